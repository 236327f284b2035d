package enrich

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/config"
	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

// running is a worker started by runWorker.
type running struct {
	w      *Worker
	exited chan struct{} // closed when Run returns
	err    error         // what Run returned, once exited is closed
	stop   func() error
}

// runWorker starts a worker; stop cancels it and returns what Run returned.
func runWorker(t *testing.T, o Options) *running {
	t.Helper()
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return start(t, w)
}

// start runs w; stop cancels it and returns what Run returned.
func start(t *testing.T, w *Worker) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, exited: make(chan struct{})}
	go func() {
		r.err = w.Run(ctx)
		close(r.exited)
	}()
	r.stop = func() error {
		cancel()
		select {
		case <-r.exited:
		case <-time.After(60 * time.Second):
			t.Fatal("worker did not stop within 60s")
		}
		return r.err
	}
	t.Cleanup(func() { _ = r.stop(); _ = w.Close(context.Background()) })
	return r
}

// alive fails the test if Run has returned.
func (r *running) alive(t *testing.T) {
	t.Helper()
	select {
	case <-r.exited:
		t.Fatalf("Run returned %v while it should keep running", r.err)
	default:
	}
}

// wait waits for Run to return by itself and returns its error.
func (r *running) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-r.exited:
		return r.err
	case <-time.After(timeout):
		t.Fatalf("Run did not return within %v", timeout)
		return nil
	}
}

// waitFor polls cond until it holds, failing after timeout (a bound for a
// hung test, not a timing assumption).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fastClient is a ClaimX client on the simulator with short timeouts, so
// that an outage shows within a fraction of a second.
func fastClient(t *testing.T, baseURL string) *claimx.Client {
	t.Helper()
	cx, err := claimx.NewClient(&config.Connection{Name: "claimx_api", BaseURL: baseURL, AuthType: "bearer", AuthToken: sim.DefaultToken,
		TimeoutSeconds: 0.3, MaxRetries: 1, RetryBackoffBase: 0.01, RetryBackoffMax: 0.05, RetryAfterMaxSeconds: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cx.Close)
	return cx
}

// shortKafka are kgo options that make every Kafka timeout a few seconds,
// so that an outage can outlast them all.
func shortKafka() []kgo.Opt {
	return []kgo.Opt{kgo.TransactionTimeout(2 * time.Second), kgo.RebalanceTimeout(2 * time.Second)}
}

// TestClaimXOutageOfAnyLength: with ClaimX down (503s), hanging, or
// answering only 429s for longer than the transaction, session and
// rebalance timeouts, the worker pauses, reports not ready naming ClaimX
// and its host, does not exit and publishes nothing to the error topic;
// once ClaimX answers again it resumes by itself and every event is
// published exactly once, in order.
func TestClaimXOutageOfAnyLength(t *testing.T) {
	for _, tt := range []struct {
		name   string
		faults sim.Faults
		reset  bool // connections closed without an answer instead
	}{
		{name: "outage_503", faults: sim.Faults{ErrorRates: map[int]float64{503: 1}}},
		{name: "hang", faults: sim.Faults{HangRate: 1}},
		{name: "429_storm", faults: sim.Faults{RateLimit429: 1, RetryAfter: time.Second}},
		{name: "connection_reset", reset: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			s := sim.New(sim.Options{Seed: 21, Projects: 12})
			var down atomic.Bool
			var requests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if down.Load() {
					if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
						conn.Close()
						return
					}
				}
				s.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			base := srv.URL
			down.Store(tt.reset)
			if err := s.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			_, m := newMetrics()
			orch, _ := components(t, base, m, testLogger())
			publishWorld(t, t.Context(), newClient(t, c.ListenAddrs()), s, sim.GenerateOptions{})
			r := runWorker(t, Options{
				Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: fastClient(t, base), Orchestrator: orch, Metrics: m, Logger: testLogger(),
				TransactionalID: "outage-" + tt.name, MaxBatch: 50, SessionTimeout: time.Second, KafkaOpts: shortKafka(),
				PauseBackoffMin: 20 * time.Millisecond, PauseBackoffMax: 200 * time.Millisecond,
			})
			var readyErr error
			waitFor(t, 30*time.Second, "not ready on ClaimX", func() bool {
				readyErr = r.w.Ready(t.Context())
				return errors.Is(readyErr, ErrClaimXUnavailable)
			})
			u, _ := url.Parse(base)
			if msg := readyErr.Error(); !strings.Contains(msg, "claimx_api") || !strings.Contains(msg, u.Host) || !strings.Contains(msg, "/customTasks/assignment/") && !strings.Contains(msg, "/export/project/") {
				t.Errorf("Ready = %q, want the connection, its host and the route", msg)
			} else if strings.Contains(msg, sim.DefaultToken) {
				t.Errorf("Ready = %q shows the token", msg)
			}
			if !errors.Is(readyErr, ErrNotReady) {
				t.Errorf("Ready = %v, want it to wrap ErrNotReady", readyErr)
			}
			paused := time.Now()
			if g := testutil.ToFloat64(m.EnrichPaused.WithLabelValues(DefaultName)); g != 1 {
				t.Errorf("kpipe_enrich_paused = %v, want 1", g)
			}
			if g := testutil.ToFloat64(m.Ready.WithLabelValues(DefaultName)); g != 0 {
				t.Errorf("kpipe_worker_ready = %v, want 0", g)
			}
			// Outlast every timeout: transaction (2s), rebalance (2s),
			// session (1s), HTTP attempt (0.3s), several times over, while
			// ClaimX keeps being asked.
			asked := requests.Load()
			waitFor(t, 60*time.Second, "a long outage", func() bool {
				r.alive(t)
				return time.Since(paused) > 6*time.Second && requests.Load() > asked+5
			})
			if err := r.w.Ready(t.Context()); !errors.Is(err, ErrClaimXUnavailable) {
				t.Fatalf("after the long outage Ready = %v, want ErrClaimXUnavailable", err)
			}
			down.Store(false)
			if err := s.SetFaults(sim.Faults{}); err != nil {
				t.Fatal(err)
			}
			want := s.Manifest().Count(sim.TemplateITelCabinet)
			got := readCommitted(t, c.ListenAddrs(), trackingTopic, want, 60*time.Second, 500*time.Millisecond)
			checkTracking(t, s, got)
			waitFor(t, 30*time.Second, "ready again", func() bool { return r.w.Ready(t.Context()) == nil })
			if g := testutil.ToFloat64(m.EnrichPaused.WithLabelValues(DefaultName)); g != 0 {
				t.Errorf("kpipe_enrich_paused = %v after the outage, want 0", g)
			}
			if g := testutil.ToFloat64(m.Ready.WithLabelValues(DefaultName)); g != 1 {
				t.Errorf("kpipe_worker_ready = %v after the outage, want 1", g)
			}
			if errs := readCommitted(t, c.ListenAddrs(), kafka.TopicEnrichmentErrors, 0, 5*time.Second, 300*time.Millisecond); len(errs) != 0 {
				t.Errorf("%d error records for an outage, want none (the events waited)", len(errs))
			}
			r.alive(t)
			if err := r.stop(); err != nil {
				t.Fatalf("Run returned %v on a clean stop", err)
			}
			if n := testutil.ToFloat64(m.EnrichEventsConsumed.WithLabelValues(DefaultName)); int(n) != s.Len() {
				t.Errorf("consumed = %v, want %d", n, s.Len())
			}
		})
	}
}

// TestHangingClaimXNotReadyAtOnce: with ClaimX hanging and the
// connection's timeout long, the worker reports not ready once the first
// lookups go unanswered for SlowLookups, before any of them fails.
func TestHangingClaimXNotReadyAtOnce(t *testing.T) {
	c := newCluster(t)
	s, base := startSim(t, 29, 6)
	if err := s.SetFaults(sim.Faults{HangRate: 1}); err != nil {
		t.Fatal(err)
	}
	_, m := newMetrics()
	orch, _ := components(t, base, m, testLogger())
	cx, err := claimx.NewClient(&config.Connection{Name: "claimx_api", BaseURL: base, AuthType: "bearer", AuthToken: sim.DefaultToken,
		TimeoutSeconds: 3, MaxRetries: 1, RetryBackoffBase: 0.01, RetryBackoffMax: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cx.Close)
	publishWorld(t, t.Context(), newClient(t, c.ListenAddrs()), s, sim.GenerateOptions{})
	r := runWorker(t, Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, Logger: testLogger(),
		TransactionalID: "slow", SlowLookups: 100 * time.Millisecond, PauseBackoffMin: 20 * time.Millisecond, PauseBackoffMax: 100 * time.Millisecond})
	var readyErr error
	waitFor(t, 30*time.Second, "not ready on unanswered lookups", func() bool {
		readyErr = r.w.Ready(t.Context())
		return errors.Is(readyErr, errSlowLookups)
	})
	if !errors.Is(readyErr, ErrClaimXUnavailable) || testutil.ToFloat64(m.EnrichPaused.WithLabelValues(DefaultName)) != 1 {
		t.Errorf("Ready = %v, paused gauge %v; want ErrClaimXUnavailable and 1", readyErr, testutil.ToFloat64(m.EnrichPaused.WithLabelValues(DefaultName)))
	}
	if err := s.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	checkTracking(t, s, readCommitted(t, c.ListenAddrs(), trackingTopic, s.Manifest().Count(sim.TemplateITelCabinet), 60*time.Second, 500*time.Millisecond))
	waitFor(t, 30*time.Second, "ready again", func() bool { return r.w.Ready(t.Context()) == nil })
	r.alive(t)
}
