package console_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/loom-gateway/loom/bench/mockupstream"
	"github.com/loom-gateway/loom/deploy/devstack"
	"github.com/loom-gateway/loom/deploy/freeport"
	"github.com/loom-gateway/loom/deploy/pgserver/pgtest"
	"github.com/loom-gateway/loom/deploy/prereq"
	"github.com/loom-gateway/loom/proxy/cli"
	"github.com/loom-gateway/loom/proxy/logtest"
)

// LOOM_UPDATE_SCREENSHOTS=1 copies the walk's screenshots into testdata/screens
// (an environment variable, not an -update flag: several tests of this
// package keep artifacts, and a second flag of that name would panic).
const envUpdateScreens = "LOOM_UPDATE_SCREENSHOTS"

// Secrets of the walk: the admin token, the mock's key (which only the
// tenant's own credential carries: the deployment's is wrong).
const (
	walkAdminToken = "loom-walk-admin-token-0123456789"
	walkUpstream   = "sk-walk-upstream-credential"
)

// walkStack is the whole of Loom as `loom serve` runs it with a tenant
// store: the gateway, the admin API and the console over one Postgres, its
// spans through the real otelcol-loom into loom.spans, in front of the
// mock upstream.
type walkStack struct {
	gateway, console string // http://host:port
	dbURL            string
	log              *logtest.Buffer
}

// startWalkStack starts it. otelcol-loom is the one `make build` put in
// bin/ (as the devstack test uses it): this test builds nothing itself.
// Not parallel: loom serve reads its secrets from the environment.
func startWalkStack(t *testing.T) *walkStack {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin", "otelcol-loom"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		prereq.Check(t, fmt.Errorf("%s %w (run `make build` to include this test)", bin, prereq.ErrNotInstalled), prereq.ErrNotInstalled)
	}
	s := &walkStack{dbURL: pgtest.Database(t, pgtest.Start(t)), log: &logtest.Buffer{}}
	dir := t.TempDir()
	addr := func() string {
		a, err := freeport.Addr()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	mock := mockupstream.New(mockupstream.Config{APIKey: walkUpstream, LogLimit: -1})
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go mock.Serve(mln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		mock.Shutdown(ctx)
	})

	// The collector as make run starts it (devstack's configuration and
	// service supervision), its database in the environment only.
	otlp, health := addr(), addr()
	cfgPath := filepath.Join(dir, "otelcol.yaml")
	if err := os.WriteFile(cfgPath, devstack.RenderCollectorConfig(otlp, health, filepath.Join(dir, "otelcol"), "", ""), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	st := &devstack.Stack{LogDir: dir, Out: devstack.NewTerminal(&out), Services: []devstack.Service{{
		Name: "otelcol", Path: bin, Args: []string{"--config", cfgPath},
		Env:   []string{devstack.EnvDatabaseURL + "=" + s.dbURL},
		Ready: devstack.HTTPReady("http://" + health + "/"),
	}}}
	if err := st.Start(t.Context()); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "otelcol.log"))
		t.Fatalf("otelcol-loom: %v\n%s\n%s", err, out.String(), log)
	}
	t.Cleanup(st.Stop)

	secretKey := make([]byte, 32)
	rand.Read(secretKey)
	t.Setenv("LOOM_WALK_DATABASE_URL", s.dbURL)
	t.Setenv("LOOM_WALK_SECRET_KEY", hex.EncodeToString(secretKey))
	tokenSum := sha256.Sum256([]byte(walkAdminToken))
	listen, adminAddr, consoleAddr := addr(), addr(), addr()
	s.gateway, s.console = "http://"+listen, "http://"+consoleAddr
	loomCfg := filepath.Join(dir, "loom.yaml")
	writeWalkFile(t, loomCfg, fmt.Sprintf(`listen: %q
timeouts: {shutdown: 5s}
tracing:
  endpoint: "http://%s"
  batch_timeout: 50ms
  spool: {dir: %q, commit_interval: 5ms}
deployments:
  - {name: mock, provider: openai, base_url: "http://%s/v1", api_key: sk-deployment-key-the-mock-refuses}
# A price, so the calls have a cost as they would in production.
prices:
  - {model: gpt-4o-mini, effective_from: 2025-01-01, input: "0.15", cached_input: "0.075", output: "0.60"}
store: {database_url_env: LOOM_WALK_DATABASE_URL, secret_key_env: LOOM_WALK_SECRET_KEY, poll: 250ms}
admin: {listen: %q, token_sha256: %s}
console: {listen: %q, database_url_env: LOOM_WALK_DATABASE_URL}
`, listen, otlp, filepath.Join(dir, "spool"), mln.Addr(), adminAddr, hex.EncodeToString(tokenSum[:]), consoleAddr))

	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- cli.Main(ctx, []string{"serve", "-config", loomCfg, "-migrate"}, s.log, s.log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("loom serve: %v\n%s", err, s.log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.console + "/console/login")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-served:
			t.Fatalf("loom serve ended at start: %v\n%s", err, s.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console did not answer in 30s\n%s", s.log.String())
		}
	}
	return s
}

func writeWalkFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// await polls the gateway until key authenticates there (the store's
// snapshot reached it), for at most 10 s.
func (s *walkStack) await(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.gateway+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("the new key does not authenticate at the gateway after 10s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// walkCalls are what the tenant's SDK sends: unary and streamed chats.
const walkCalls = 4

// calls makes walkCalls calls with openai-go as the tenant, then waits
// until their spans are in loom.spans, for at most 20 s.
func (s *walkStack) calls(ctx context.Context, key, model string) error {
	c := openai.NewClient(option.WithBaseURL(s.gateway+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Timeout: 20 * time.Second}))
	for i := range walkCalls {
		p := openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{
			openai.UserMessage(fmt.Sprintf("Walk call %d: say hello", i+1))}}
		if i%2 == 0 {
			resp, err := c.Chat.Completions.New(ctx, p)
			if err != nil {
				return fmt.Errorf("call %d: %w", i+1, err)
			}
			if len(resp.Choices) == 0 || resp.Choices[0].Message.Content == "" {
				return fmt.Errorf("call %d: an empty answer", i+1)
			}
			continue
		}
		st := c.Chat.Completions.NewStreaming(ctx, p)
		var acc openai.ChatCompletionAccumulator
		for st.Next() {
			acc.AddChunk(st.Current())
		}
		if err := st.Err(); err != nil {
			return fmt.Errorf("call %d (streamed): %w", i+1, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	n := 0
	for {
		err := conn.QueryRow(ctx, `SELECT count(*) FROM loom.spans WHERE kind = 'client' AND api_key_id = (
			SELECT id FROM loom.api_keys WHERE sha256 = $1)`, sha256Of(key)).Scan(&n)
		if err == nil && n >= walkCalls {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("loom.spans holds %d of the %d calls after 20s: %w", n, walkCalls, err)
			}
			return fmt.Errorf("loom.spans holds %d of the %d calls after 20s", n, walkCalls)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func sha256Of(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// TestWalk_NewUsersPath_InHeadlessChromium is the walk-through, in
// Chromium (browser/walk.spec.mjs): the administrator logs in, makes a
// tenant with a model and its own provider credential, and a key; the
// tenant logs in with that key, makes calls with openai-go, sees them on
// the overview and the calls list and opens one; the administrator revokes
// the key and the tenant's session ends. No browser error on any page.
// The spec asks the test for the SDK calls over a little HTTP endpoint of
// the test's own (the key travels there, never through a log).
//
// Its screenshots (1280 wide) are in a directory under
// os.TempDir()/loom-console-artifacts; LOOM_UPDATE_SCREENSHOTS=1 copies
// them into testdata/screens for the README.
func TestWalk_NewUsersPath_InHeadlessChromium(t *testing.T) {
	node := specTools(t)
	begun := time.Now()
	s := startWalkStack(t)
	shots := screenshots(t, "walk")

	// The spec's line to the SDK: POST /await and POST /calls with the key
	// as the body.
	var mu sync.Mutex
	var callErr error
	var tenantKey string
	sdk := http.NewServeMux()
	sdk.HandleFunc("POST /await", func(w http.ResponseWriter, r *http.Request) {
		key, _ := io.ReadAll(io.LimitReader(r.Body, 200))
		if err := s.await(r.Context(), string(key)); err != nil {
			http.Error(w, err.Error(), http.StatusGatewayTimeout)
		}
	})
	sdk.HandleFunc("POST /calls", func(w http.ResponseWriter, r *http.Request) {
		key, _ := io.ReadAll(io.LimitReader(r.Body, 200))
		err := s.calls(r.Context(), string(key), r.URL.Query().Get("model"))
		mu.Lock()
		callErr, tenantKey = err, string(key)
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "%d", walkCalls)
	})
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sdkSrv := &http.Server{Handler: sdk}
	go sdkSrv.Serve(sln)
	t.Cleanup(func() { sdkSrv.Close() })

	started := time.Since(begun)
	err = runSpec(t, node, "walk.spec.mjs",
		"WALK_CONSOLE_URL="+s.console,
		"WALK_ADMIN_TOKEN="+walkAdminToken,
		"WALK_UPSTREAM_KEY="+walkUpstream,
		"WALK_SDK_URL=http://"+sln.Addr().String(),
		fmt.Sprintf("WALK_CALLS=%d", walkCalls),
		"WALK_SCREENSHOTS="+shots,
	)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("stack up in %s; the walk done in %s", started.Round(time.Millisecond), time.Since(begun).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("walk.spec.mjs: %v (SDK calls: %v)\nloom's log:\n%s", err, callErr, s.log.String())
	}
	if tenantKey == "" {
		t.Error("the spec never asked for the SDK calls")
	}
	for _, secret := range []string{walkAdminToken, walkUpstream, tenantKey} {
		if secret != "" && strings.Contains(s.log.String(), secret) {
			t.Errorf("loom's log holds a secret (%.12s…)", secret)
		}
	}
	if os.Getenv(envUpdateScreens) == "1" {
		copyScreens(t, shots, filepath.Join("testdata", "screens"))
	}
}

// copyScreens copies the PNGs of from into to, replacing those there.
func copyScreens(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	pngs, err := filepath.Glob(filepath.Join(from, "*.png"))
	if err != nil || len(pngs) == 0 {
		t.Fatalf("no screenshots in %s (%v)", from, err)
	}
	for _, p := range pngs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d screenshots copied into %s", len(pngs), to)
}
