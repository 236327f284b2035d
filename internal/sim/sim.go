// Package sim is the ClaimX simulator: an http.Handler serving the ClaimX
// API over a deterministic world, with fault injection, and an event
// generator producing the ClaimX events of that world with a ground-truth
// manifest.
//
// The world comes from Options.Seed: projects with policyholders, media,
// video collaborations and task assignments of several templates (32513, the
// iTel Cabinet Repair Form, among them, about 40 % of assignments). Each
// assignment has a lifecycle that follows ValidTransition: assigned →
// in_progress → completed, sometimes reassigned, reopened or cancelled, with
// CUSTOM_TASK_UPDATED events between status changes. Every step is an event
// of the timeline, which starts at Options.BaseTime.
//
// Routes (all but /admin need "Authorization: Bearer <Options.Token>", 401
// otherwise):
//
//	GET /customTasks/assignment/{assignmentId}?full=true  task assignment row
//	GET /export/project/{projectId}                       project export
//	GET /api/v1/tasks/{task_id}                           task TEMPLATE (task_id = template id, e.g. 32513)
//	GET /api/v1/projects/{project_id}                     project summary
//	GET, PUT /admin/faults                                fault injection (JSON, see Faults)
//	GET, PUT /admin/clock                                 the API clock ({"now": RFC 3339})
//	GET /admin/stats                                      request counters
//
// The API answers as of its clock: an assignment shows the status of its
// last step at or before the clock, and does not exist (404) before its
// first. The clock is Options.Now when set; otherwise it is virtual: at
// first the end of the timeline (everything has happened), rewound by
// Generate to its first event and moved forward with each event emitted, so
// a consumer enriching an event sees the task as of that event or later,
// as it would in production. SetNow moves it by hand.
//
// Example:
//
//	s := sim.New(sim.Options{Seed: 1, Projects: 100})
//	srv := httptest.NewServer(s)
//	err := s.Generate(ctx, sim.GenerateOptions{}, func(ctx context.Context, k, v []byte) error { ... })
//	want := s.Manifest().EventsForTemplate(32513)
//	st, ok := s.AssignmentAt(want[0].AssignmentID, want[0].At) // the assignment as of an event
package sim

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kpipe/internal/clock"
	"kpipe/internal/jsonx"
)

// DefaultBaseTime is where the timeline starts unless Options.BaseTime is set.
var DefaultBaseTime = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

// DefaultToken is the bearer token when Options.Token is empty.
const DefaultToken = "sim-token"

// eventsPerProject is about how many events a project produces.
const eventsPerProject = 13

// Options configure a simulator.
type Options struct {
	// Seed makes the world: the same seed gives the same world and events.
	Seed int64
	// Projects is the number of projects (default 100, or derived from
	// Events).
	Projects int
	// Events, when Projects is zero, sizes the world to about this many
	// events (about 13 per project).
	Events int
	// TaskTemplates are the template ids assignments use (default
	// DefaultTemplates).
	TaskTemplates []int64
	// BaseTime is when the timeline starts (default DefaultBaseTime).
	BaseTime time.Time
	// Token is the bearer token the API accepts (default DefaultToken).
	Token string
	// Faults are injected from the start.
	Faults Faults
	// Now, when set, is the API clock (see the package comment).
	Now func() time.Time
}

// Sim is the simulator. It is an http.Handler, safe for concurrent use.
type Sim struct {
	// w is the world; Generate with Forever replaces it by a grown copy
	// (see world.grow), so readers load it once per request.
	w      atomic.Pointer[world]
	token  []byte
	nowFn  func() time.Time
	vclock atomic.Int64 // unix nanos of the virtual clock
	faults atomic.Pointer[activeFaults]
	mux    *http.ServeMux
	bufs   sync.Pool

	inflight    atomic.Int64
	maxInflight atomic.Int64
	requests    atomic.Int64
	byStatus    sync.Map // int → *atomic.Int64
}

// New builds the world of opts. Faults that fail Validate are dropped; set
// them with SetFaults to see the error.
func New(opts Options) *Sim {
	n := opts.Projects
	if n <= 0 {
		n = 100
		if opts.Events > 0 {
			n = max(1, int(math.Ceil(float64(opts.Events)/eventsPerProject)))
		}
	}
	tpls := opts.TaskTemplates
	if len(tpls) == 0 {
		tpls = DefaultTemplates
	}
	base := opts.BaseTime
	if base.IsZero() {
		base = DefaultBaseTime
	}
	base = base.UTC()
	tok := opts.Token
	if tok == "" {
		tok = DefaultToken
	}
	s := &Sim{token: []byte("Bearer " + tok), nowFn: opts.Now}
	s.w.Store(buildWorld(opts.Seed, n, tpls, base))
	s.vclock.Store(s.cur().end.Add(time.Millisecond).UnixNano())
	s.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	if s.SetFaults(opts.Faults) != nil {
		s.SetFaults(Faults{})
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /customTasks/assignment/{id}", s.serveAssignment)
	s.mux.HandleFunc("GET /export/project/{id}", s.serveExport)
	s.mux.HandleFunc("GET /api/v1/tasks/{id}", s.serveTemplate)
	s.mux.HandleFunc("GET /api/v1/projects/{id}", s.serveProject)
	return s
}

// cur returns the world as it is now.
func (s *Sim) cur() *world { return s.w.Load() }

// SetFaults replaces the injected faults; outage windows count from now.
func (s *Sim) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.faults.Store(newActiveFaults(f, time.Now()))
	return nil
}

// Faults returns the injected faults.
func (s *Sim) Faults() Faults { return s.faults.Load().Faults }

// Now returns the API clock.
func (s *Sim) Now() time.Time {
	if s.nowFn != nil {
		return s.nowFn()
	}
	return time.Unix(0, s.vclock.Load()).UTC()
}

// SetNow sets the virtual clock (ignored when Options.Now is set).
func (s *Sim) SetNow(t time.Time) { s.vclock.Store(t.UnixNano()) }

// advance moves the virtual clock forward to t.
func (s *Sim) advance(t time.Time) {
	n := t.UnixNano()
	for {
		cur := s.vclock.Load()
		if cur >= n || s.vclock.CompareAndSwap(cur, n) {
			return
		}
	}
}

// Start and End are the first and last event times of the timeline.
func (s *Sim) Start() time.Time { return s.cur().base }

// End is the time of the last event.
func (s *Sim) End() time.Time { return s.cur().end }

// Stats are request counters since New.
type Stats struct {
	Requests    int64         `json:"requests"`
	InFlight    int64         `json:"in_flight"`
	MaxInFlight int64         `json:"max_in_flight"`
	ByStatus    map[int]int64 `json:"by_status"`
}

// Stats returns the request counters (admin requests excluded).
func (s *Sim) Stats() Stats {
	st := Stats{Requests: s.requests.Load(), InFlight: s.inflight.Load(), MaxInFlight: s.maxInflight.Load(), ByStatus: map[int]int64{}}
	s.byStatus.Range(func(k, v any) bool {
		st.ByStatus[k.(int)] = v.(*atomic.Int64).Load()
		return true
	})
	return st
}

// ResetStats zeroes the counters.
func (s *Sim) ResetStats() {
	s.requests.Store(0)
	s.maxInflight.Store(s.inflight.Load())
	s.byStatus.Clear()
}

func (s *Sim) countStatus(code int) {
	v, ok := s.byStatus.Load(code)
	if !ok {
		v, _ = s.byStatus.LoadOrStore(code, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// ServeHTTP implements http.Handler.
func (s *Sim) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/admin/") {
		s.serveAdmin(rw, r)
		return
	}
	s.requests.Add(1)
	n := s.inflight.Add(1)
	for {
		m := s.maxInflight.Load()
		if n <= m || s.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	defer s.inflight.Add(-1)
	sw := &statusWriter{ResponseWriter: rw}
	defer func() { s.countStatus(sw.code()) }()

	v := s.faults.Load().draw(time.Now())
	if v.outage {
		sw.Header().Set("Retry-After", "5")
		writeError(sw, http.StatusServiceUnavailable, "service unavailable (outage)")
		return
	}
	if v.delay > 0 && clock.Sleep(r.Context(), v.delay) != nil {
		return
	}
	if v.hang {
		_ = clock.Sleep(r.Context(), 10*time.Minute)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), s.token) != 1 {
		sw.Header().Set("WWW-Authenticate", `Bearer realm="claimx"`)
		writeError(sw, http.StatusUnauthorized, "invalid or missing bearer token")
		return
	}
	if v.status == http.StatusTooManyRequests {
		ra := s.faults.Load().RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		sw.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ra.Seconds()))))
		writeError(sw, v.status, "rate limit exceeded")
		return
	}
	if v.status != 0 {
		writeError(sw, v.status, http.StatusText(v.status))
		return
	}
	if v.malformed {
		r = r.WithContext(context.WithValue(r.Context(), malformedKey{}, true))
	}
	s.mux.ServeHTTP(sw, r)
}

type malformedKey struct{}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return 499 // the client went away (hang)
	}
	return w.status
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b := make([]byte, 0, 96)
	b = append(b, `{"error":{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = jsonx.AppendString(b, msg)
	b = append(b, "}}"...)
	w.Write(b)
}

// reply writes a rendered body, cut short when the malformed fault drew it.
func (s *Sim) reply(w http.ResponseWriter, r *http.Request, render func([]byte) []byte) {
	bp := s.bufs.Get().(*[]byte)
	b := render((*bp)[:0])
	if r.Context().Value(malformedKey{}) != nil {
		b = b[:len(b)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
	if cap(b) <= 1<<16 {
		*bp = b
		s.bufs.Put(bp)
	}
}

func (s *Sim) serveAssignment(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "assignmentId must be an integer")
		return
	}
	a := s.cur().assignmentByID(id)
	si := -1
	if a != nil {
		si = a.stateAt(s.Now())
	}
	if si < 0 {
		writeError(w, http.StatusNotFound, "task assignment not found")
		return
	}
	full := r.URL.RawQuery == "full=true" || r.URL.Query().Get("full") == "true"
	s.reply(w, r, func(b []byte) []byte { return s.cur().renderAssignment(b, a, si, full) })
}

func (s *Sim) project(w http.ResponseWriter, r *http.Request) (*project, time.Time) {
	now := s.Now()
	p := s.cur().projectByID(r.PathValue("id"))
	if p == nil || p.created().After(now) {
		writeError(w, http.StatusNotFound, "project not found")
		return nil, now
	}
	return p, now
}

func (s *Sim) serveExport(w http.ResponseWriter, r *http.Request) {
	if p, now := s.project(w, r); p != nil {
		s.reply(w, r, func(b []byte) []byte { return s.cur().renderExport(b, p, now) })
	}
}

func (s *Sim) serveProject(w http.ResponseWriter, r *http.Request) {
	if p, now := s.project(w, r); p != nil {
		s.reply(w, r, func(b []byte) []byte { return s.cur().renderProject(b, p, now) })
	}
}

func (s *Sim) serveTemplate(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	known := false
	for _, t := range s.cur().templates {
		known = known || t == id
	}
	if err != nil || !known {
		writeError(w, http.StatusNotFound, "task not found")
		return
	}
	now := s.Now()
	s.reply(w, r, func(b []byte) []byte { return s.cur().renderTemplate(b, templateFor(id), now) })
}

func (s *Sim) serveAdmin(w http.ResponseWriter, r *http.Request) {
	writeJSON := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.URL.Path == "/admin/faults" && r.Method == http.MethodGet:
		writeJSON(s.Faults())
	case r.URL.Path == "/admin/faults" && r.Method == http.MethodPut:
		var f Faults
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err := json.Unmarshal(body, &f); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := s.SetFaults(f); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(s.Faults())
	case r.URL.Path == "/admin/clock" && r.Method == http.MethodGet:
		writeJSON(map[string]any{"now": s.Now().Format(time.RFC3339Nano), "start": s.cur().base, "end": s.cur().end})
	case r.URL.Path == "/admin/clock" && r.Method == http.MethodPut:
		var c struct {
			Now time.Time `json:"now"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&c); err != nil || c.Now.IsZero() {
			writeError(w, http.StatusBadRequest, `want {"now": "<RFC 3339 time>"}`)
			return
		}
		s.SetNow(c.Now)
		writeJSON(map[string]any{"now": s.Now().Format(time.RFC3339Nano)})
	case r.URL.Path == "/admin/stats" && r.Method == http.MethodGet:
		writeJSON(s.Stats())
	default:
		writeError(w, http.StatusNotFound, "unknown admin route")
	}
}

var _ http.Handler = (*Sim)(nil)
