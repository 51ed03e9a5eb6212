// Command httpprobe is the health check inside Loom's container images
// (deploy/docker): distroless images have no shell, curl or wget, so a
// compose healthcheck or a Docker HEALTHCHECK runs this instead. It GETs each
// URL and exits 0 when every one answered 2xx within -timeout, 1 otherwise,
// saying which did not. It reads no environment and writes nothing but
// stderr, so it is safe to run as often as a healthcheck does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	if err := Main(context.Background(), os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "httpprobe:", err)
		}
		os.Exit(1)
	}
}

// maxBody bounds what is read of an answer: enough to say why it failed.
const maxBody = 512

// Main probes every URL in args, each within -timeout.
func Main(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("httpprobe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "how long each URL may take to answer")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: httpprobe [-timeout 3s] URL...\nExits 0 when every URL answers a GET with 2xx.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no URL given")
	}
	// No keep-alive and no proxy from the environment: a probe is one
	// request to a local port.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: *timeout}
	var errs []error
	for _, raw := range fs.Args() {
		if err := probe(ctx, client, raw); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func probe(ctx context.Context, client *http.Client, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: not an http or https URL", raw)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", raw, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", raw, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s: %q", raw, resp.Status, body)
	}
	return nil
}
