package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startServer runs a server on ":0" until the test ends and returns its base
// URL.
func startServer(t *testing.T, ready ReadyFunc) (string, *Metrics) {
	t.Helper()
	reg := NewRegistry()
	m := New(reg)
	srv := NewServer("127.0.0.1:0", reg, ready, slog.New(slog.DiscardHandler))
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return "http://" + srv.Addr().String(), m
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestServerHealthz(t *testing.T) {
	base, _ := startServer(t, func(context.Context) error { return errors.New("never ready") })
	code, body, _ := get(t, base+"/healthz")
	if code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("got %d %q, want 200 \"ok\"", code, body)
	}
}

func TestServerReadyz(t *testing.T) {
	var notReady atomic.Pointer[error]
	base, _ := startServer(t, func(ctx context.Context) error {
		if p := notReady.Load(); p != nil {
			return *p
		}
		return ctx.Err()
	})
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantBody string
	}{
		{"ready", nil, http.StatusOK, "ok"},
		{"not consuming", errors.New("worker not consuming: no partitions assigned"), http.StatusServiceUnavailable, "not ready: worker not consuming: no partitions assigned"},
		{"storage down", errors.New("delta storage unreachable: permission denied"), http.StatusServiceUnavailable, "not ready: delta storage unreachable: permission denied"},
		{"ready again", nil, http.StatusOK, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err != nil {
				notReady.Store(&tt.err)
			} else {
				notReady.Store(nil)
			}
			code, body, _ := get(t, base+"/readyz")
			if code != tt.wantCode || strings.TrimSpace(body) != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestServerNilReadyIsReady(t *testing.T) {
	base, _ := startServer(t, nil)
	if code, body, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("got %d %q, want 200", code, body)
	}
}

func TestServerMetrics(t *testing.T) {
	base, m := startServer(t, nil)
	m.WorkerMessagesConsumed.WithLabelValues("itel_cabinet_tracking_worker").Add(3)
	m.WorkerClaimXAPILatency.WithLabelValues("itel_cabinet_tracking_worker").Observe(0.02)
	code, body, hdr := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("got %d, want 200", code)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain exposition", ct)
	}
	for _, want := range []string{
		`itel_worker_messages_consumed_total{worker="itel_cabinet_tracking_worker"} 3`,
		`itel_worker_claimx_api_latency_seconds_count{worker="itel_cabinet_tracking_worker"} 1`,
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	// The default registry is never exposed: its promhttp_* collectors must
	// not appear.
	if strings.Contains(body, "promhttp_metric_handler_requests_total") {
		t.Errorf("scrape exposes the default registry")
	}
}

func TestServerPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("promtool not found and CI is set: install prometheus (Debian package) to lint the scrape")
		}
		t.Skip("promtool not found: install prometheus (Debian package) to lint the scrape; set CI to make this a failure")
	}
	base, m := startServer(t, nil)
	// Touch every labelled collector so the scrape holds every family.
	m.WorkerMessagesConsumed.WithLabelValues("w").Inc()
	m.WorkerProcessingLatency.WithLabelValues("w").Observe(0.1)
	m.DeltaStorageUp.WithLabelValues("t").Set(1)
	m.ConsumerLag.WithLabelValues("g", "topic", "0").Set(5)
	m.HandlerMessages.WithLabelValues("w", "lookup", ResultIn).Inc()
	code, body, _ := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("got %d, want 200", code)
	}
	cmd := exec.CommandContext(t.Context(), promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out.String())
	}
}

func TestServerShutsDownOnCancel(t *testing.T) {
	srv := NewServer("127.0.0.1:0", NewRegistry(), nil, nil)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); !errors.Is(err, ErrServerStarted) {
		t.Fatalf("second Start: got %v, want ErrServerStarted", err)
	}
	addr := srv.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	if code, _, _ := get(t, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthz before cancel: %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: got %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

func TestServerBusyPort(t *testing.T) {
	a := NewServer("127.0.0.1:0", NewRegistry(), nil, nil)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b := NewServer(a.Addr().String(), NewRegistry(), nil, nil)
	if err := b.Run(t.Context()); err == nil {
		t.Fatal("Run on a busy port: got nil error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
