package httpconn

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"kpipe/internal/clock"
	"kpipe/internal/config"
	"kpipe/internal/jsonx"
	"kpipe/internal/metrics"
)

// Defaults used when a Connection field is zero (the config loader normally
// fills them in already).
const (
	DefaultTimeout        = 30 * time.Second
	DefaultBackoffBase    = 2.0
	DefaultBackoffMax     = 60 * time.Second
	DefaultRetryAfterMax  = 60 * time.Second
	DefaultMaxConcurrency = 32
)

// maxBodyBytes bounds a response body; a larger one is an error.
const maxBodyBytes = 64 << 20

// snippetBytes is how much of an error body an Error keeps.
const snippetBytes = 256

// Clock is the time source of retry waits; tests inject one that records the
// schedule instead of sleeping. Implementations must be safe for concurrent
// use.
type Clock interface {
	// Now returns the current time (used to read Retry-After HTTP dates).
	Now() time.Time
	// Sleep waits for d, or until ctx is done, in which case it returns
	// ctx.Err() at once.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error { return clock.Sleep(ctx, d) }

// Option configures a Client.
type Option func(*Client)

// WithMetrics records kpipe_http_requests_total, _request_duration_seconds
// and _retries_total for the connection. Nil means no metrics.
func WithMetrics(m *metrics.Metrics) Option { return func(c *Client) { c.metrics = m } }

// WithHTTPClient sends requests with hc (its Timeout should be zero: the
// client bounds each attempt itself). By default the client builds its own
// transport with an idle pool sized to the connection's concurrency.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithClock replaces the clock used for retry waits.
func WithClock(clk Clock) Option { return func(c *Client) { c.clock = clk } }

// WithLogger sets the logger (retries are logged at debug level).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// Client sends requests on one named connection. It is safe for concurrent
// use; at most MaxConcurrency requests are in flight at once (callers beyond
// that block, honouring their context), and with RateLimit set at most that
// many requests start per second. Retry waits do not hold a concurrency slot.
type Client struct {
	name          string
	host          string
	base          string
	header        http.Header
	hc            *http.Client
	timeout       time.Duration
	maxRetries    int
	backoffBase   float64
	backoffMax    time.Duration
	retryAfterMax time.Duration
	sem           chan struct{}
	limiter       *rate.Limiter
	clock         Clock
	log           *slog.Logger
	metrics       *metrics.Metrics
	requests      *prometheus.CounterVec
	retries       prometheus.Counter
}

// New builds the client of a named connection. Zero fields take the
// package defaults, except MaxRetries, where zero means no retries.
func New(conn *config.Connection, opts ...Option) (*Client, error) {
	if conn == nil {
		return nil, errors.New("httpconn: nil connection")
	}
	name := conn.Name
	if name == "" {
		name = "default"
	}
	u, err := url.Parse(conn.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("connection %q: base_url must be an http(s) URL", name)
	}
	if u.User != nil {
		return nil, fmt.Errorf("connection %q: base_url must not hold credentials; use auth_type", name)
	}
	c := &Client{
		name:          name,
		host:          u.Host,
		base:          strings.TrimRight(u.String(), "/"),
		header:        make(http.Header, len(conn.Headers)+2),
		timeout:       orDuration(conn.Timeout(), DefaultTimeout),
		maxRetries:    max(conn.MaxRetries, 0),
		backoffBase:   conn.RetryBackoffBase,
		backoffMax:    orDuration(conn.BackoffMax(), DefaultBackoffMax),
		retryAfterMax: orDuration(conn.RetryAfterMax(), DefaultRetryAfterMax),
		clock:         realClock{},
	}
	if c.backoffBase <= 0 {
		c.backoffBase = DefaultBackoffBase
	}
	conc := conn.MaxConcurrency
	if conc <= 0 {
		conc = DefaultMaxConcurrency
	}
	c.sem = make(chan struct{}, conc)
	if conn.RateLimit > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(conn.RateLimit), 1)
	}
	c.header.Set("Accept", "application/json")
	for k, v := range conn.Headers {
		c.header.Set(k, v)
	}
	switch strings.ToLower(conn.AuthType) {
	case "", "none":
	case "bearer":
		if conn.AuthToken == "" {
			return nil, fmt.Errorf("connection %q: auth_type bearer needs auth_token", name)
		}
		c.header.Set("Authorization", "Bearer "+conn.AuthToken.Reveal())
	case "basic":
		cred := conn.Username + ":" + conn.Password.Reveal()
		c.header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))
	default:
		return nil, fmt.Errorf("connection %q: auth_type %q: want bearer, basic or none", name, conn.AuthType)
	}
	for _, o := range opts {
		o(c)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("connection", name)
	var rt http.RoundTripper
	if c.hc != nil {
		hc := *c.hc
		c.hc = &hc
		rt = hc.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = conc
		tr.MaxIdleConns = max(conc*2, 100)
		tr.IdleConnTimeout = 90 * time.Second
		rt = tr
		c.hc = &http.Client{}
	}
	if m := c.metrics; m != nil {
		lbl := prometheus.Labels{"connection": name}
		rt = promhttp.InstrumentRoundTripperDuration(m.HTTPRequestDuration.MustCurryWith(lbl), rt)
		c.requests = m.HTTPRequests.MustCurryWith(lbl)
		c.retries = m.HTTPRetries.With(lbl)
	}
	c.hc.Transport = rt
	return c, nil
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Name returns the connection's name.
func (c *Client) Name() string { return c.name }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Get sends GET base_url+path?query, with retries, and returns the 2xx body.
func (c *Client) Get(ctx context.Context, path string, query url.Values) ([]byte, error) {
	var out []byte
	err := c.do(ctx, path, query.Encode(), func(b []byte) error {
		out = append([]byte(nil), b...)
		return nil
	})
	return out, err
}

// GetJSON is Get for a JSON object body, decoded with exact integers (int64)
// and float64 for other numbers. A body that is not a JSON object is retried
// like a network error and finally fails with an *Error wrapping
// ErrMalformedBody.
func (c *Client) GetJSON(ctx context.Context, path string, query url.Values) (map[string]any, error) {
	var out map[string]any
	err := c.GetParsed(ctx, path, query, func(b []byte) error {
		m, err := jsonx.DecodeObject(b, 0)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformedBody, err)
		}
		out = m
		return nil
	})
	return out, err
}

// GetParsed is Get with the 2xx body handed to parse, valid only during
// the call, instead of copied. An error from parse (one wrapping
// ErrMalformedBody, say) is retried like a network error and finally
// fails as an *Error wrapping it.
func (c *Client) GetParsed(ctx context.Context, path string, query url.Values, parse func(body []byte) error) error {
	return c.do(ctx, path, query.Encode(), parse)
}

// Ping sends one GET of the base URL, without retries, and reports whether
// the API answered: nil for any response but a 5xx or 429 (a 404 or 401 is
// an answer too), else an *Error for which IsRetryable is true.
func (c *Client) Ping(ctx context.Context) error {
	r := c.attempt(ctx, c.base+"/", func([]byte) error { return nil })
	if r.err == nil && !retryableStatus(r.status) {
		return nil
	}
	he := &Error{Connection: c.name, Host: c.host, Method: http.MethodGet, URL: "/", Status: r.status, Attempts: 1, Body: r.body, Err: r.err}
	he.Retryable = ctx.Err() == nil && !r.notSent
	if r.notSent {
		he.Attempts = 0
	}
	return he
}

type attemptResult struct {
	notSent    bool // the context ended before the request went out
	status     int
	retryAfter string
	body       string
	err        error
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// do runs the retry loop; fn consumes a 2xx body (valid only during the
// call) and may reject it with ErrMalformedBody.
func (c *Client) do(ctx context.Context, path, rawQuery string, fn func([]byte) error) error {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	shown := path
	if rawQuery != "" {
		shown += "?" + rawQuery
	}
	target := c.base + shown
	var last attemptResult
	for attempt := 1; ; attempt++ {
		r := c.attempt(ctx, target, fn)
		if r.err == nil && r.status >= 200 && r.status < 300 {
			return nil
		}
		if r.notSent {
			attempt--
			r.status, r.body = last.status, last.body
		}
		last = r
		he := &Error{Connection: c.name, Host: c.host, Method: http.MethodGet, URL: shown, Status: r.status, Attempts: attempt, Body: r.body, Err: r.err}
		if err := ctx.Err(); err != nil {
			he.Err = err
			return he
		}
		if r.notSent { // the rate limiter cannot start it before the deadline
			return he
		}
		he.Retryable = r.err != nil || retryableStatus(r.status)
		if !he.Retryable || attempt > c.maxRetries {
			return he
		}
		wait := c.backoff(attempt)
		if r.retryAfter != "" && (r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable) {
			if d, ok := parseRetryAfter(r.retryAfter, c.clock.Now()); ok {
				wait = min(d, c.retryAfterMax)
			}
		}
		if c.retries != nil {
			c.retries.Inc()
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "http_retry", slog.String("url", shown), slog.Int("status", r.status), slog.Int("attempt", attempt), slog.Duration("wait", wait))
		if err := c.clock.Sleep(ctx, wait); err != nil {
			he.Err = err
			he.Retryable = false
			return he
		}
	}
}

// attempt sends one request, holding a concurrency slot for its duration.
func (c *Client) attempt(ctx context.Context, target string, fn func([]byte) error) attemptResult {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return attemptResult{notSent: true, err: ctx.Err()}
	}
	defer func() { <-c.sem }()
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			if ctx.Err() == nil { // the wait would outlast the deadline
				err = fmt.Errorf("rate limit wait exceeds the deadline: %w", context.DeadlineExceeded)
			}
			return attemptResult{notSent: true, err: err}
		}
	}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, target, nil)
	if err != nil {
		return attemptResult{status: -1, err: err}
	}
	req.Header = c.header // read-only: RoundTrippers must not modify requests
	resp, err := c.hc.Do(req)
	if err != nil {
		c.count("error")
		return attemptResult{err: c.networkError(ctx, actx, err)}
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			bufPool.Put(buf)
		}
	}()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, maxBodyBytes+1))
	resp.Body.Close()
	c.count(statusLabel(resp.StatusCode))
	r := attemptResult{status: resp.StatusCode}
	switch {
	case err != nil:
		r.err = c.networkError(ctx, actx, err)
	case buf.Len() > maxBodyBytes:
		r.err = fmt.Errorf("%w: body larger than %d bytes", ErrMalformedBody, maxBodyBytes)
	case r.status >= 200 && r.status < 300:
		r.err = fn(buf.Bytes())
	default:
		r.retryAfter = resp.Header.Get("Retry-After")
	}
	if r.err != nil || r.status < 200 || r.status >= 300 {
		b := buf.Bytes()
		if len(b) > snippetBytes {
			b = b[:snippetBytes]
		}
		r.body = string(b)
	}
	return r
}

// networkError strips the URL from a transport error (the error says which
// URL already) and names a per-attempt timeout as such.
func (c *Client) networkError(ctx, actx context.Context, err error) error {
	if ctx.Err() == nil && actx.Err() != nil {
		return fmt.Errorf("attempt timed out after %s: %w", c.timeout, context.DeadlineExceeded)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *Client) count(code string) {
	if c.requests != nil {
		c.requests.WithLabelValues(code).Inc()
	}
}

var statusLabels = func() (s [600]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return
}()

func statusLabel(code int) string {
	if code >= 0 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}

// backoff returns the wait before retry n: base^n seconds, jittered by
// ±20 %, capped at the connection's maximum.
func (c *Client) backoff(n int) time.Duration {
	secs := math.Pow(c.backoffBase, float64(n)) * (0.8 + 0.4*rand.Float64())
	if secs >= c.backoffMax.Seconds() || math.IsInf(secs, 0) || math.IsNaN(secs) {
		return c.backoffMax
	}
	return time.Duration(secs * float64(time.Second))
}

// parseRetryAfter reads delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 || math.IsNaN(secs) || math.IsInf(secs, 0) {
			return 0, false
		}
		if secs > 1e6 {
			secs = 1e6
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
