package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMain_EveryURLAnswers2xx_Succeeds(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("method %s, want GET", r.Method)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer ok.Close()
	var stderr bytes.Buffer
	if err := Main(context.Background(), []string{ok.URL + "/readyz", ok.URL + "/"}, &stderr); err != nil {
		t.Fatalf("Main: %v (stderr %q)", err, stderr.String())
	}
}

func TestMain_OneURLAnswers503_FailsNamingIt(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status":"draining"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	err := Main(context.Background(), []string{srv.URL + "/healthz", srv.URL + "/readyz"}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("Main succeeded with /readyz answering 503")
	}
	for _, want := range []string{"/readyz", "503", "draining"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "/healthz") {
		t.Errorf("error %q names /healthz, which answered 200", err)
	}
}

func TestMain_NothingListening_Fails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := Main(context.Background(), []string{"http://" + addr + "/"}, &bytes.Buffer{}); err == nil {
		t.Fatal("Main succeeded against a closed port")
	}
}

func TestMain_AnswerSlowerThanTimeout_Fails(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	err := Main(context.Background(), []string{"-timeout", "100ms", srv.URL}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("Main succeeded although the server never answered")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Main took %v with -timeout 100ms", d)
	}
}

func TestMain_NoURLOrNotHTTP_IsAnError(t *testing.T) {
	for _, args := range [][]string{nil, {"127.0.0.1:9464/readyz"}, {"file:///etc/passwd"}} {
		if err := Main(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("Main(%q) succeeded", args)
		}
	}
}
