package httpconn_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"kpipe/internal/config"
	"kpipe/internal/httpconn"
	"kpipe/internal/metrics"
	"kpipe/internal/sim"
)

const token = "s3cr3t-token-value"

// fakeClock records retry waits instead of sleeping.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

type fixture struct {
	sim   *sim.Sim
	srv   *httptest.Server
	conn  *config.Connection
	clock *fakeClock
	m     *metrics.Metrics
}

func newFixture(t testing.TB, faults string) *fixture {
	t.Helper()
	f, err := sim.ParseFaults(faults)
	if err != nil {
		t.Fatal(err)
	}
	s := sim.New(sim.Options{Seed: 1, Projects: 50, Token: token, Faults: f})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &fixture{
		sim: s, srv: srv,
		conn: &config.Connection{Name: "claimx_api", BaseURL: srv.URL, AuthType: "bearer", AuthToken: token,
			TimeoutSeconds: 5, MaxRetries: 3, RetryBackoffBase: 2, RetryBackoffMax: 60, RetryAfterMaxSeconds: 60, MaxConcurrency: 8,
			Headers: map[string]string{"User-Agent": "ClaimXPipeline-iTel/1.0"}},
		clock: &fakeClock{now: time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)},
		m:     metrics.New(prometheus.NewRegistry()),
	}
}

func (f *fixture) client(t testing.TB, opts ...httpconn.Option) *httpconn.Client {
	t.Helper()
	c, err := httpconn.New(f.conn, append([]httpconn.Option{httpconn.WithClock(f.clock), httpconn.WithMetrics(f.m)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (f *fixture) firstAssignment() int64 {
	return f.sim.Manifest().AssignmentIDs(sim.TemplateITelCabinet)[0]
}

// getAssignment fetches a task assignment from the simulator, as the ClaimX
// API over the client does.
func getAssignment(ctx context.Context, c *httpconn.Client, id int64) (map[string]any, error) {
	return c.GetJSON(ctx, "/customTasks/assignment/"+strconv.FormatInt(id, 10), url.Values{"full": {"true"}})
}

// getTemplate fetches the simulator's task template.
func getTemplate(ctx context.Context, c *httpconn.Client) (map[string]any, error) {
	return c.GetJSON(ctx, "/api/v1/tasks/"+strconv.FormatInt(sim.TemplateITelCabinet, 10), nil)
}

func asError(t *testing.T, err error) *httpconn.Error {
	t.Helper()
	var he *httpconn.Error
	if !errors.As(err, &he) {
		t.Fatalf("got %T %v, want *httpconn.Error", err, err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("error leaks the token: %v", err)
	}
	return he
}

// TestClientFetches: GetJSON keeps integers exact, Get returns the body
// with the query sent, a 404 is not retried, and each request is counted.
func TestClientFetches(t *testing.T) {
	f := newFixture(t, "")
	c := f.client(t)
	if c.Name() != "claimx_api" {
		t.Fatalf("Name() = %q", c.Name())
	}
	id := f.firstAssignment()
	row, err := getAssignment(t.Context(), c, id)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := row["assignment_id"].(int64); !ok || got != id {
		t.Fatalf("assignment_id %T %v, want int64 %d", row["assignment_id"], row["assignment_id"], id)
	}
	if tid, ok := row["task_id"].(int64); !ok || tid != sim.TemplateITelCabinet {
		t.Fatalf("task_id %T %v", row["task_id"], row["task_id"])
	}
	if _, err := getAssignment(t.Context(), c, 1); !httpconn.IsNotFound(err) {
		t.Fatalf("unknown id: %v, want 404", err)
	} else if he := asError(t, err); he.Attempts != 1 || he.Retryable {
		t.Fatalf("404 retried: %+v", he)
	}
	b, err := c.Get(t.Context(), "/api/v1/tasks/"+strconv.FormatInt(sim.TemplateITelCabinet, 10), url.Values{"x": {"1"}})
	if err != nil || !strings.Contains(string(b), "iTel Cabinet Repair Form") {
		t.Fatalf("Get: %v %s", err, b)
	}
	if got := testutil.ToFloat64(f.m.HTTPRequests.WithLabelValues("claimx_api", "200")); got != 2 {
		t.Fatalf("requests{code=200} = %v, want 2", got)
	}
	if n := testutil.CollectAndCount(f.m.HTTPRequestDuration); n != 1 {
		t.Fatalf("duration series %d", n)
	}
}

func TestRetryBackoffSchedule(t *testing.T) {
	tests := []struct {
		name       string
		base, max  float64
		retries    int
		wantWaits  []float64 // seconds before jitter (±20 %), capped at max
		wantStatus int
	}{
		{"base 2", 2, 60, 3, []float64{2, 4, 8}, 503},
		{"capped", 3, 10, 4, []float64{3, 9, 10, 10}, 503},
		{"no retries", 2, 60, 0, nil, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "503=1")
			f.conn.RetryBackoffBase, f.conn.RetryBackoffMax, f.conn.MaxRetries = tt.base, tt.max, tt.retries
			c := f.client(t)
			_, err := getAssignment(t.Context(), c, f.firstAssignment())
			he := asError(t, err)
			if he.Status != tt.wantStatus || !he.Retryable || he.Attempts != tt.retries+1 || !httpconn.IsRetryable(err) {
				t.Fatalf("got %+v, want status %d retryable after %d attempts", he, tt.wantStatus, tt.retries+1)
			}
			if got := f.sim.Stats().Requests; got != int64(tt.retries+1) {
				t.Fatalf("sim saw %d requests, want %d", got, tt.retries+1)
			}
			waits := f.clock.waits()
			if len(waits) != len(tt.wantWaits) {
				t.Fatalf("waits %v, want %d", waits, len(tt.wantWaits))
			}
			for i, w := range waits {
				want := tt.wantWaits[i]
				lo, hi := time.Duration(want*0.8*1e9), time.Duration(min(want*1.2, tt.max)*1e9)
				if w < lo || w > hi {
					t.Fatalf("wait %d = %s, want in [%s, %s]", i+1, w, lo, hi)
				}
			}
			if got := testutil.ToFloat64(f.m.HTTPRetries.WithLabelValues("claimx_api")); got != float64(tt.retries) {
				t.Fatalf("retries metric %v", got)
			}
			if got := testutil.ToFloat64(f.m.HTTPRequests.WithLabelValues("claimx_api", "503")); got != float64(tt.retries+1) {
				t.Fatalf("requests{503} metric %v", got)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	f := newFixture(t, "429=1,retry_after=7s")
	c := f.client(t)
	_, err := getAssignment(t.Context(), c, f.firstAssignment())
	if he := asError(t, err); he.Status != 429 || he.Attempts != 4 {
		t.Fatalf("got %+v", he)
	}
	for _, w := range f.clock.waits() {
		if w != 7*time.Second {
			t.Fatalf("waits %v, want 7s each", f.clock.waits())
		}
	}
	// Capped by retry_after_max_seconds.
	f2 := newFixture(t, "429=1,retry_after=120s")
	f2.conn.RetryAfterMaxSeconds = 3
	c2 := f2.client(t)
	getAssignment(t.Context(), c2, f2.firstAssignment())
	for _, w := range f2.clock.waits() {
		if w != 3*time.Second {
			t.Fatalf("waits %v, want capped at 3s", f2.clock.waits())
		}
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", clock.Now().Add(11*time.Second).Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"ok":true,"n":12345678901234567,"f":1.5}`))
	}))
	defer srv.Close()
	c, err := httpconn.New(&config.Connection{BaseURL: srv.URL, MaxRetries: 2}, httpconn.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.GetJSON(t.Context(), "/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m["n"] != int64(12345678901234567) || m["f"] != 1.5 {
		t.Fatalf("numbers: %#v", m)
	}
	if w := clock.waits(); len(w) != 1 || w[0] != 11*time.Second {
		t.Fatalf("waits %v, want [11s]", w)
	}
}

func TestUnauthorizedNotRetried(t *testing.T) {
	f := newFixture(t, "")
	f.conn.AuthToken = "wrong-" + token
	c := f.client(t)
	_, err := getAssignment(t.Context(), c, f.firstAssignment())
	he := asError(t, err)
	if he.Status != 401 || he.Retryable || he.Attempts != 1 || len(f.clock.waits()) != 0 {
		t.Fatalf("got %+v waits %v", he, f.clock.waits())
	}
	if strings.Contains(err.Error(), "wrong-") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

// waitingClock sleeps for real and says when a wait begins.
type waitingClock struct{ waiting chan time.Duration }

func (waitingClock) Now() time.Time { return time.Now() }

func (c waitingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.waiting <- d
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func TestCancelDuringWait(t *testing.T) {
	f := newFixture(t, "429=1,retry_after=30s")
	clock := waitingClock{waiting: make(chan time.Duration, 1)}
	c, err := httpconn.New(f.conn, httpconn.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		// Cancel once the client waits out the Retry-After, whenever
		// the 429 arrives.
		<-clock.waiting
		cancel()
	}()
	start := time.Now()
	_, err = getAssignment(ctx, c, f.firstAssignment())
	if el := time.Since(start); el >= 30*time.Second {
		t.Fatalf("the cancel did not cut the 30s wait short (%s)", el)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if he := asError(t, err); he.Status != 429 || he.Attempts != 1 || he.Retryable {
		t.Fatalf("got %+v", he)
	}
}

func TestConcurrencyLimitHeld(t *testing.T) {
	f := newFixture(t, "latency=20ms")
	f.conn.MaxConcurrency = 4
	c := f.client(t)
	ids := f.sim.Manifest().AssignmentIDs(0)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if _, err := getAssignment(t.Context(), c, ids[i%len(ids)]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := f.sim.Stats().MaxInFlight; got != 4 {
		t.Fatalf("max in flight %d, want 4", got)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, "")
	f.conn.RateLimit = 50
	c := f.client(t)
	start := time.Now()
	var wg sync.WaitGroup
	for range 11 {
		wg.Go(func() { getTemplate(t.Context(), c) })
	}
	wg.Wait()
	if el := time.Since(start); el < 180*time.Millisecond {
		t.Fatalf("11 requests at 50/s took %s, want >= 200ms", el)
	}
}

// TestFaultModesObservable drives each fault of the simulator through the
// client and checks what the caller sees.
func TestFaultModesObservable(t *testing.T) {
	tests := []struct {
		faults string
		check  func(t *testing.T, err error, el time.Duration, f *fixture)
	}{
		{"latency=150ms", func(t *testing.T, err error, el time.Duration, _ *fixture) {
			if err != nil || el < 150*time.Millisecond {
				t.Fatalf("err %v after %s", err, el)
			}
		}},
		{"500=1", func(t *testing.T, err error, _ time.Duration, _ *fixture) {
			if he := asError(t, err); he.Status != 500 || !he.Retryable || he.Attempts != 2 {
				t.Fatalf("%+v", he)
			}
		}},
		{"404=1", func(t *testing.T, err error, _ time.Duration, _ *fixture) {
			if !httpconn.IsNotFound(err) || httpconn.IsRetryable(err) {
				t.Fatalf("%v", err)
			}
		}},
		{"429=1,retry_after=4s", func(t *testing.T, err error, _ time.Duration, f *fixture) {
			if he := asError(t, err); he.Status != 429 || f.clock.waits()[0] != 4*time.Second {
				t.Fatalf("%+v %v", he, f.clock.waits())
			}
		}},
		{"hang=1", func(t *testing.T, err error, el time.Duration, _ *fixture) {
			he := asError(t, err)
			if he.Status != 0 || !he.Retryable || !errors.Is(err, context.DeadlineExceeded) || el > 3*time.Second {
				t.Fatalf("%+v after %s", he, el)
			}
		}},
		{"latency=1s", func(t *testing.T, err error, el time.Duration, _ *fixture) { // slower than the timeout
			if he := asError(t, err); !errors.Is(err, context.DeadlineExceeded) || he.Attempts != 2 {
				t.Fatalf("%+v after %s", he, el)
			}
		}},
		{"outage=0s-1h", func(t *testing.T, err error, _ time.Duration, f *fixture) {
			if he := asError(t, err); he.Status != 503 || f.clock.waits()[0] != 5*time.Second {
				t.Fatalf("%+v %v", he, f.clock.waits())
			}
		}},
		{"malformed=1", func(t *testing.T, err error, _ time.Duration, _ *fixture) {
			he := asError(t, err)
			if !errors.Is(err, httpconn.ErrMalformedBody) || he.Status != 200 || he.Attempts != 2 || he.Body == "" {
				t.Fatalf("%+v", he)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.faults, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.faults)
			f.conn.MaxRetries = 1
			f.conn.TimeoutSeconds = 0.3
			c := f.client(t)
			start := time.Now()
			_, err := getAssignment(t.Context(), c, f.firstAssignment())
			tt.check(t, err, time.Since(start), f)
		})
	}
	t.Run("set while running", func(t *testing.T) {
		f := newFixture(t, "")
		f.conn.MaxRetries = 0
		c := f.client(t)
		if _, err := getTemplate(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, f.srv.URL+"/admin/faults", strings.NewReader(`{"error_rates":{"502":1}}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("PUT /admin/faults: %v", err)
		}
		resp.Body.Close()
		if _, err := getTemplate(t.Context(), c); httpconn.StatusOf(err) != 502 {
			t.Fatalf("after PUT: %v", err)
		}
	})
}

func TestAuthAndHeaders(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c, err := httpconn.New(&config.Connection{BaseURL: srv.URL + "/base/", AuthType: "basic", Username: "u", Password: "p",
		Headers: map[string]string{"X-Team": "itel"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetJSON(t.Context(), "x", nil); err != nil {
		t.Fatal(err)
	}
	if got.Get("Authorization") != "Basic dTpw" || got.Get("X-Team") != "itel" || got.Get("Accept") != "application/json" {
		t.Fatalf("headers %v", got)
	}
	for _, bad := range []config.Connection{
		{BaseURL: ""}, {BaseURL: "ftp://x"}, {BaseURL: "http://u:p@x"},
		{BaseURL: "http://x", AuthType: "bearer"}, {BaseURL: "http://x", AuthType: "digest"},
	} {
		if _, err := httpconn.New(&bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// BenchmarkClient measures the client against the simulator over loopback
// HTTP at 64 concurrent callers.
func BenchmarkClient(b *testing.B) {
	for _, bc := range []struct {
		name string
		call func(c *httpconn.Client, ctx context.Context, id int64) error
	}{
		{"assignment", func(c *httpconn.Client, ctx context.Context, id int64) error {
			_, err := getAssignment(ctx, c, id)
			return err
		}},
		{"template", func(c *httpconn.Client, ctx context.Context, _ int64) error {
			_, err := getTemplate(ctx, c)
			return err
		}},
	} {
		b.Run(bc.name+"/c64", func(b *testing.B) {
			f := newFixture(b, "")
			f.conn.MaxConcurrency = 64
			c := f.client(b)
			ids := f.sim.Manifest().AssignmentIDs(0)
			var n atomic.Int64
			b.SetParallelism(max(1, 64/max(1, runtimeProcs())))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if err := bc.call(c, b.Context(), ids[int(i)%len(ids)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

func TestCancelWhileQueued(t *testing.T) {
	f := newFixture(t, "latency=300ms")
	f.conn.MaxConcurrency = 1
	c := f.client(t)
	go getTemplate(t.Context(), c) // holds the only slot
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := getTemplate(ctx, c)
	he := asError(t, err)
	if !errors.Is(err, context.DeadlineExceeded) || he.Attempts != 0 {
		t.Fatalf("queued request: %+v", he)
	}
	// A rate-limit wait longer than the deadline fails at once, unsent.
	f.conn.MaxConcurrency, f.conn.RateLimit = 4, 0.5
	c2 := f.client(t)
	getTemplate(t.Context(), c2)
	ctx2, cancel2 := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel2()
	if _, err := getTemplate(ctx2, c2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("rate-limited past deadline: %v", err)
	}
}

// TestPing: one request, no retries; any answer but a 5xx or 429 means the
// API is up; an error names the connection and its host, never the token.
func TestPing(t *testing.T) {
	for _, tt := range []struct {
		faults string
		up     bool
	}{
		{"", true},
		{"503=1", false},
		{"429=1", false},
	} {
		f := newFixture(t, tt.faults)
		c := f.client(t)
		err := c.Ping(t.Context())
		if got := err == nil; got != tt.up {
			t.Fatalf("faults %q: Ping = %v, want up %v", tt.faults, err, tt.up)
		}
		if st := f.sim.Stats(); st.Requests != 1 {
			t.Fatalf("faults %q: %d requests, want 1", tt.faults, st.Requests)
		}
		if err != nil {
			he := asError(t, err)
			if !httpconn.IsRetryable(err) || !strings.Contains(err.Error(), strings.TrimPrefix(f.srv.URL, "http://")) {
				t.Fatalf("faults %q: Ping = %v (%+v), want a retryable error naming the host", tt.faults, err, he)
			}
		}
	}
}
