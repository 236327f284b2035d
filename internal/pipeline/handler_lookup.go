package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kpipe/internal/dlq"
	"kpipe/internal/httpconn"
	"kpipe/internal/jsonx"
	"kpipe/internal/lookup"
)

// On-error policies of the lookup handler.
const (
	OnErrorLogAndContinue = "log_and_continue"
	OnErrorFail           = "fail"
)

// LookupConfig configures the lookup handler.
type LookupConfig struct {
	// Connection names the HTTP connection (connections.yaml). Required.
	Connection string `yaml:"connection"`
	// Endpoint is the path, with {name} placeholders filled from PathParams.
	// Required.
	Endpoint string `yaml:"endpoint"`
	// PathParams map placeholder → dotted field path of the event.
	PathParams map[string]string `yaml:"path_params"`
	// QueryParams map query parameter → dotted field path; absent or null
	// fields are left out.
	QueryParams map[string]string `yaml:"query_params"`
	// ResultField receives the response object (null on a failure with
	// log_and_continue). Required.
	ResultField string `yaml:"result_field"`
	// CacheTTL is how long, in seconds, a response is reused for the same
	// request; 0 turns the cache off. Default 0.
	CacheTTL float64 `yaml:"cache_ttl"`
	// CacheSize bounds the cached responses. Default 10000.
	CacheSize int `yaml:"cache_size"`
	// OnError is log_and_continue (the event goes on with a null result and
	// an error record) or fail (the event goes to the error topic). Default
	// log_and_continue.
	OnError string `yaml:"on_error"`
	// MaxConcurrency bounds the calls one batch has in flight. Default 32;
	// the connection's own limit applies as well.
	MaxConcurrency int `yaml:"max_concurrency"`
}

var placeholderRE = regexp.MustCompile(`\{([^{}]*)\}`)

// Validate implements Validator.
func (c *LookupConfig) Validate() error {
	var errs []error
	if c.Connection == "" {
		errs = append(errs, errors.New("connection is required"))
	}
	if c.Endpoint == "" {
		errs = append(errs, errors.New("endpoint is required"))
	}
	if c.ResultField == "" {
		errs = append(errs, errors.New("result_field is required"))
	}
	for _, m := range placeholderRE.FindAllStringSubmatch(c.Endpoint, -1) {
		if _, ok := c.PathParams[m[1]]; !ok {
			errs = append(errs, fmt.Errorf("endpoint placeholder {%s} has no path_params entry", m[1]))
		}
	}
	for name := range c.PathParams {
		if !strings.Contains(c.Endpoint, "{"+name+"}") {
			errs = append(errs, fmt.Errorf("path_params.%s is not used by endpoint %q", name, c.Endpoint))
		}
	}
	if c.CacheTTL < 0 {
		errs = append(errs, fmt.Errorf("cache_ttl %v is negative", c.CacheTTL))
	}
	if c.CacheSize < 0 || c.MaxConcurrency < 0 {
		errs = append(errs, errors.New("cache_size and max_concurrency must not be negative"))
	}
	switch c.OnError {
	case OnErrorLogAndContinue, OnErrorFail:
	default:
		errs = append(errs, fmt.Errorf("on_error %q: want %s or %s", c.OnError, OnErrorLogAndContinue, OnErrorFail))
	}
	return errors.Join(errs...)
}

func lookupDefaults() *LookupConfig {
	return &LookupConfig{OnError: OnErrorLogAndContinue, CacheSize: 10000, MaxConcurrency: 32}
}

// Lookup fetches a JSON object per event from a named connection and puts it
// in result_field. Calls for one batch run concurrently; equal requests are
// made once, and with a cache_ttl once per TTL, even when batches of several
// partitions ask at the same time. Retries of 429 and 5xx answers are the
// connection client's job.
type Lookup struct {
	cfg    LookupConfig
	client JSONGetter
	log    *slog.Logger
	cache  *lookup.Cache[string, map[string]any] // nil: cache_ttl 0
	parts  []endpointPart
	query  []mapping

	calls, apiErrs, hits, misses prometheus.Counter
	latency                      prometheus.Observer
	closeClient                  func()
}

// endpointPart is a literal (field empty) or a placeholder's field path.
type endpointPart struct {
	lit, field string
	path       fieldPath
}

var lookupFactory = TypedFactory(lookupDefaults, func(cfg *LookupConfig, deps Deps) (Handler, error) {
	var client JSONGetter
	var closeFn func()
	if deps.Client != nil {
		c, err := deps.Client(cfg.Connection)
		if err != nil {
			return nil, fmt.Errorf("connection %q: %w", cfg.Connection, err)
		}
		client = c
	} else {
		conn, ok := deps.Connections[cfg.Connection]
		if !ok {
			return nil, fmt.Errorf("connection %q is not defined (known: %v)", cfg.Connection, sortedKeys(deps.Connections))
		}
		c, err := httpconn.New(conn, httpconn.WithMetrics(deps.Metrics), httpconn.WithLogger(deps.Logger))
		if err != nil {
			return nil, err
		}
		client, closeFn = c, c.Close
	}
	l, err := NewLookup(cfg, client, deps)
	if err != nil {
		if closeFn != nil {
			closeFn()
		}
		return nil, err
	}
	l.closeClient = closeFn
	return l, nil
})

// NewLookup builds a lookup calling client.
func NewLookup(cfg *LookupConfig, client JSONGetter, deps Deps) (*Lookup, error) {
	deps = deps.withDefaults()
	l := &Lookup{cfg: *cfg, client: client, log: deps.Logger.With("handler", TypeLookup)}
	if l.cfg.MaxConcurrency <= 0 {
		l.cfg.MaxConcurrency = 32
	}
	rest := cfg.Endpoint
	for _, loc := range placeholderRE.FindAllStringSubmatchIndex(cfg.Endpoint, -1) {
		// loc indexes cfg.Endpoint; rest is consumed left to right.
		consumed := len(cfg.Endpoint) - len(rest)
		l.parts = append(l.parts, endpointPart{lit: rest[:loc[0]-consumed]})
		name := cfg.Endpoint[loc[2]:loc[3]]
		l.parts = append(l.parts, endpointPart{field: cfg.PathParams[name], path: compilePath(cfg.PathParams[name])})
		rest = cfg.Endpoint[loc[1]:]
	}
	if rest != "" {
		l.parts = append(l.parts, endpointPart{lit: rest})
	}
	for name, field := range cfg.QueryParams {
		l.query = append(l.query, newMapping(name, field))
	}
	sort.Slice(l.query, func(i, j int) bool { return l.query[i].to < l.query[j].to })
	if cfg.CacheTTL > 0 {
		size := cfg.CacheSize
		if size <= 0 {
			size = 10000
		}
		c, err := lookup.New[string, map[string]any](lookup.Options{
			TTL:  time.Duration(cfg.CacheTTL * float64(time.Second)),
			Size: size,
		})
		if err != nil {
			return nil, fmt.Errorf("building cache: %w", err)
		}
		l.cache = c
	}
	m, w := deps.Metrics, deps.WorkerName
	l.calls = m.WorkerClaimXAPICalls.WithLabelValues(w)
	l.apiErrs = m.WorkerClaimXAPIErrors.WithLabelValues(w)
	l.latency = m.WorkerClaimXAPILatency.WithLabelValues(w)
	l.hits = m.CacheHits.WithLabelValues(w, TypeLookup)
	l.misses = m.CacheMisses.WithLabelValues(w, TypeLookup)
	return l, nil
}

// appendPath appends the endpoint of ev to dst, without allocating when the
// parameters are plain strings or integers.
func (l *Lookup) appendPath(dst []byte, ev *Event) ([]byte, error) {
	for i := range l.parts {
		p := &l.parts[i]
		if p.field == "" {
			dst = append(dst, p.lit...)
			continue
		}
		v, ok := p.path.get(ev.Fields)
		if !ok || v == nil {
			return dst, Errorf(dlq.ClassLookup, l.cfg.Endpoint, "path parameter field %q is missing", p.field)
		}
		switch t := v.(type) {
		case int64:
			dst = strconv.AppendInt(dst, t, 10)
			continue
		case string:
			dst = appendPathEscaped(dst, t)
			continue
		}
		s, ok := scalarString(v)
		if !ok {
			return dst, Errorf(dlq.ClassLookup, l.cfg.Endpoint, "path parameter field %q is a %s, not a scalar", p.field, jsonx.TypeName(v))
		}
		dst = appendPathEscaped(dst, s)
	}
	return dst, nil
}

// appendPathEscaped appends url.PathEscape(s), copying s as is when nothing
// needs escaping.
func appendPathEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			continue
		}
		return append(dst, url.PathEscape(s)...)
	}
	return append(dst, s...)
}

// withQuery returns the request key and query of ev for the rendered path.
func (l *Lookup) withQuery(ev *Event, path string) (key string, query url.Values, err error) {
	if len(l.query) == 0 {
		return path, nil, nil
	}
	query = make(url.Values, len(l.query))
	for i := range l.query {
		q := &l.query[i]
		v, ok := q.path.get(ev.Fields)
		if !ok || v == nil {
			continue
		}
		s, ok := scalarString(v)
		if !ok {
			return "", nil, Errorf(dlq.ClassLookup, l.cfg.Endpoint, "query parameter field %q is a %s, not a scalar", q.from, jsonx.TypeName(v))
		}
		query.Set(q.to, s)
	}
	if len(query) == 0 {
		return path, nil, nil
	}
	return path + "?" + query.Encode(), query, nil
}

func scalarString(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case int64:
		return strconv.FormatInt(t, 10), true
	case int:
		return strconv.Itoa(t), true
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(t), true
	}
	return "", false
}

// call makes one API call, counting it.
func (l *Lookup) call(ctx context.Context, path string, query url.Values) (map[string]any, error) {
	start := time.Now()
	l.calls.Inc()
	m, err := l.client.GetJSON(ctx, path, query)
	l.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		l.apiErrs.Inc()
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// fetch returns the response for one request, through the cache when there
// is one: it loads a key once at a time, so concurrent fetches of a key make
// a single call.
func (l *Lookup) fetch(ctx context.Context, key, path string, query url.Values) (map[string]any, error) {
	if l.cache == nil {
		return l.call(ctx, path, query)
	}
	if v, ok := l.cache.Cached(key); ok {
		l.hits.Inc()
		return v, nil
	}
	v, loaded, err := l.cache.Get(ctx, key, func(ctx context.Context, _ string) (map[string]any, error) {
		return l.call(ctx, path, query)
	})
	if loaded {
		l.misses.Inc()
	} else {
		l.hits.Inc()
	}
	return v, err
}

// Handle implements Handler.
func (l *Lookup) Handle(ctx context.Context, ev *Event) ([]*Event, error) {
	res, err := l.HandleBatch(ctx, []*Event{ev})
	if err != nil {
		return nil, err
	}
	return res[0].Events, res[0].Err
}

// HandleBatch implements BatchHandler: the distinct requests of the batch
// run concurrently, answers from the cache without a goroutine. Events of
// the batch asking the same thing share one answer: the cache is asked once
// per distinct request and batch, and the endpoint of an event is rendered
// into a reused buffer, so a cache hit costs no allocation.
func (l *Lookup) HandleBatch(ctx context.Context, evs []*Event) ([]Result, error) {
	type call struct {
		key   string
		path  string
		query url.Values
		val   map[string]any
		err   error
		done  bool // answered from the cache
	}
	results := make([]Result, len(evs))
	byEvent := make([]*call, len(evs))
	var (
		calls   map[string]*call // by request key
		pending int              // calls not answered from the cache
		hits    int
		buf     []byte
		last    *call // the previous event's call, for runs of equal keys
		lastKey []byte
	)
	for i, ev := range evs {
		self := evs[i : i+1 : i+1]
		var err error
		buf, err = l.appendPath(buf[:0], ev)
		if err != nil {
			l.settle(ev, self, &results[i], nil, err)
			continue
		}
		var (
			c          *call
			key, query = "", url.Values(nil)
		)
		switch {
		case len(l.query) == 0 && last != nil && string(buf) == string(lastKey):
			c = last
		case len(l.query) == 0:
			c = calls[string(buf)] // no allocation for the lookup
		default:
			key, query, err = l.withQuery(ev, string(buf))
			if err != nil {
				l.settle(ev, self, &results[i], nil, err)
				continue
			}
			c = calls[key]
		}
		if c == nil {
			path := string(buf)
			if len(l.query) == 0 {
				key = path
			}
			c = &call{key: key, path: path, query: query}
			if calls == nil {
				calls = make(map[string]*call)
			}
			calls[key] = c
			if l.cache != nil {
				if v, ok := l.cache.Cached(key); ok {
					c.val, c.done = v, true
					hits++
				}
			}
			if !c.done {
				pending++
			}
		} else if l.cache != nil {
			hits++ // answered by the cache, or coalesced within the batch
		}
		if len(l.query) == 0 {
			last, lastKey = c, append(lastKey[:0], buf...)
		}
		byEvent[i] = c
	}
	if pending > 0 {
		todo := make([]*call, 0, pending)
		for _, c := range calls {
			if !c.done {
				todo = append(todo, c)
			}
		}
		lookup.Each(len(todo), l.cfg.MaxConcurrency, func(i int) {
			c := todo[i]
			c.val, c.err = l.fetch(ctx, c.key, c.path, c.query)
		})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if hits > 0 {
		l.hits.Add(float64(hits))
	}
	for i, ev := range evs {
		if c := byEvent[i]; c != nil {
			l.settle(ev, evs[i:i+1:i+1], &results[i], c.val, c.err)
		}
	}
	return results, nil
}

// settle sets ev's result field from a response or applies on_error; self
// is the one-event slice passed on.
//
// The response map is the cache's, shared by every event that asked the
// same thing: handlers replace fields, never mutate them (see Event), the
// Delta writer reads it into the row and the table copies what it encodes.
func (l *Lookup) settle(ev *Event, self []*Event, r *Result, val map[string]any, err error) {
	if err == nil {
		ev.Fields[l.cfg.ResultField] = val
		r.Events = self
		return
	}
	var he *HandlerError
	if !errors.As(err, &he) {
		he = &HandlerError{Class: dlq.ClassLookup, Rule: l.cfg.Endpoint, Err: err}
		if status := httpconn.StatusOf(err); status != 0 {
			he.Rule = l.cfg.Endpoint + " status " + strconv.Itoa(status)
		}
	}
	he.Handler = TypeLookup
	if l.cfg.OnError == OnErrorFail {
		r.Err = he
		return
	}
	ev.Fields[l.cfg.ResultField] = nil
	ev.Record(he)
	r.Events = self
}

// Close implements Handler.
func (l *Lookup) Close(context.Context) error {
	if l.cache != nil {
		l.cache.Close()
	}
	if l.closeClient != nil {
		l.closeClient()
	}
	return nil
}

var (
	_ Handler      = (*Lookup)(nil)
	_ BatchHandler = (*Lookup)(nil)
)
