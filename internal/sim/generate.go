package sim

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"kpipe/internal/claimx"
)

// Len is the number of events of the world.
func (s *Sim) Len() int { return len(s.cur().events) }

// TaskEvents calls fn with the event id and the template (task_id) of each
// task event, one of an assignment's lifecycle, among the first n events of
// the timeline (all of them when n <= 0 or n > Len), in timeline order. It
// renders nothing but the ids (a 32-byte string each, which fn may keep):
// the way to list a large world's task events (Events renders every event
// of the world).
func (s *Sim) TaskEvents(n int, fn func(eventID string, taskID int64)) {
	w := s.cur()
	if n <= 0 || n > len(w.events) {
		n = len(w.events)
	}
	for i := range n {
		if e := &w.events[i]; e.assign >= 0 {
			fn(w.eventID(e), w.assigns[e.assign].template)
		}
	}
}

// Events returns every event of the world, ordered by ingested_at. It builds
// a fresh slice on each call; for large worlds prefer Generate.
func (s *Sim) Events() []claimx.Event {
	out := make([]claimx.Event, len(s.cur().events))
	var buf []byte
	for i := range s.cur().events {
		if cap(buf)-len(buf) < 1024 {
			buf = make([]byte, 0, 64<<10)
		}
		out[i], buf = s.cur().event(&s.cur().events[i], buf)
	}
	return out
}

// ManifestEntry is one task event of an assignment, as it happened.
type ManifestEntry struct {
	EventID        string
	EventType      string
	Status         string
	PreviousStatus string
	TaskID         int64
	AssignmentID   int64
	ProjectID      string
	At             time.Time
}

// Manifest is the ground truth of task events: per assignment, its events in
// order. A pipeline that lands every task event once, whatever the delivery
// order or duplication, ends up holding exactly these.
type Manifest struct {
	// Assignments maps an assignment id to its events, in timeline order.
	Assignments map[int64][]ManifestEntry
	// Templates maps an assignment id to its template (task_id).
	Templates map[int64]int64
	// ids lists the assignment ids in creation order.
	ids []int64
}

// Manifest returns the ground truth of the world's task events.
func (s *Sim) Manifest() Manifest {
	w := s.cur()
	m := Manifest{Assignments: make(map[int64][]ManifestEntry, len(w.assigns)), Templates: make(map[int64]int64, len(w.assigns))}
	for i := range w.assigns {
		a := &w.assigns[i]
		p := &w.projects[a.project]
		es := make([]ManifestEntry, len(a.steps))
		for k := range a.steps {
			st := a.step(k)
			es[k] = ManifestEntry{EventID: w.eventID(&w.events[st.event]), EventType: st.eventType, Status: st.status, PreviousStatus: st.prev,
				TaskID: a.template, AssignmentID: a.id, ProjectID: p.id(), At: st.at}
		}
		m.Assignments[a.id] = es
		m.Templates[a.id] = a.template
		m.ids = append(m.ids, a.id)
	}
	return m
}

// AssignmentIDs returns the ids of the assignments of a template (all
// templates when taskID is 0), in creation order.
func (m Manifest) AssignmentIDs(taskID int64) []int64 {
	var out []int64
	for _, id := range m.ids {
		if taskID == 0 || m.Templates[id] == taskID {
			out = append(out, id)
		}
	}
	return out
}

// EventsForTemplate returns every task event of the template's assignments,
// ordered by time (then assignment, then lifecycle order).
func (m Manifest) EventsForTemplate(taskID int64) []ManifestEntry {
	var out []ManifestEntry
	for _, id := range m.AssignmentIDs(taskID) {
		out = append(out, m.Assignments[id]...)
	}
	slices.SortStableFunc(out, func(a, b ManifestEntry) int { return a.At.Compare(b.At) })
	return out
}

// Count returns the number of task events of a template (all when 0).
func (m Manifest) Count(taskID int64) int {
	n := 0
	for _, id := range m.AssignmentIDs(taskID) {
		n += len(m.Assignments[id])
	}
	return n
}

// GenerateOptions shape the delivery of events.
type GenerateOptions struct {
	// Rate is events per second; 0 delivers as fast as the sink takes them.
	Rate float64
	// Limit stops after this many events of the timeline (0: all); duplicates
	// do not count.
	Limit int
	// DuplicateRate is the fraction of events delivered twice, the copy a
	// few events later, as webhook retries do.
	DuplicateRate float64
	// ReorderWindow lets each event arrive up to this many positions later
	// than its timeline order (0: in order).
	ReorderWindow int
	// Seed varies duplication and reordering (the world stays the same).
	Seed int64
	// Forever grows the world when its events run out: as many projects
	// again, created after the last event, so that generation goes on
	// until ctx is done (kpipe up's "until Ctrl-C"). Limit still stops it.
	// The world, and the manifest, grow by about 250 bytes an event.
	Forever bool
}

// Sink receives one event: the key is the project id (so a project's events
// share a partition), the value the event's JSON. The sink owns both slices.
type Sink func(ctx context.Context, key, value []byte) error

// Generate delivers the world's events to sink, in timeline order unless
// ReorderWindow or DuplicateRate say otherwise, and advances the virtual
// clock (rewound first to the start of the timeline) to each event's
// ingested_at. It stops at the first sink error, or when ctx is done.
func (s *Sim) Generate(ctx context.Context, o GenerateOptions, sink Sink) error {
	w := s.cur()
	if s.nowFn == nil && len(w.events) > 0 {
		s.SetNow(w.events[0].at().Add(-time.Millisecond))
	}
	g := generator{s: s, o: o, start: time.Now(), sink: sink}
	step := min(len(w.projects), maxGrow)
	defer g.stop()
	for from := 0; ; {
		n := len(w.events)
		if o.Limit > 0 && o.Limit < n {
			n = o.Limit
		}
		if err := g.deliver(ctx, w, from, n); err != nil {
			return err
		}
		if !o.Forever || (o.Limit > 0 && n >= o.Limit) || len(w.projects) == 0 {
			return nil
		}
		from = n
		w = w.grow(step)
		s.w.Store(w)
	}
}

// maxGrow caps how many projects a world grows by at once.
const maxGrow = 1000

// generator delivers events at a rate across the world's growths.
type generator struct {
	s       *Sim
	o       GenerateOptions
	start   time.Time
	sent    int
	timer   *time.Timer
	scratch []byte
	sink    Sink
}

func (g *generator) stop() {
	if g.timer != nil {
		g.timer.Stop()
	}
}

// deliver sends the timeline events from..n-1 of w.
func (g *generator) deliver(ctx context.Context, w *world, from, n int) error {
	for _, idx := range deliveryOrder(from, n, g.o) {
		if g.o.Rate > 0 {
			due := g.start.Add(time.Duration(float64(g.sent) / g.o.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				if g.timer == nil {
					g.timer = time.NewTimer(d)
				} else {
					g.timer.Reset(d)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-g.timer.C:
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		g.sent++
		e := &w.events[idx]
		var ev claimx.Event
		ev, g.scratch = w.event(e, g.scratch[:0])
		value := ev.AppendJSON(make([]byte, 0, len(g.scratch)+320))
		key := []byte(ev.ProjectID)
		if g.s.nowFn == nil {
			g.s.advance(e.at())
		}
		if err := g.sink(ctx, key, value); err != nil {
			return err
		}
	}
	return nil
}

// deliveryOrder returns the timeline indices from..n-1 in delivery order.
func deliveryOrder(from, n int, o GenerateOptions) []int32 {
	if o.ReorderWindow <= 0 && o.DuplicateRate <= 0 {
		out := make([]int32, 0, n-from)
		for i := from; i < n; i++ {
			out = append(out, int32(i))
		}
		return out
	}
	r := rand.New(rand.NewPCG(uint64(o.Seed), 0x6b70697065^uint64(from)))
	type slot struct {
		pos float64
		idx int32
	}
	slots := make([]slot, 0, n-from+int(float64(n-from)*o.DuplicateRate)+1)
	w := float64(max(o.ReorderWindow, 0))
	for i := from; i < n; i++ {
		slots = append(slots, slot{float64(i) + r.Float64()*w, int32(i)})
		if o.DuplicateRate > 0 && r.Float64() < o.DuplicateRate {
			slots = append(slots, slot{float64(i) + 0.5 + r.Float64()*(w+3), int32(i)})
		}
	}
	slices.SortStableFunc(slots, func(a, b slot) int {
		switch {
		case a.pos < b.pos:
			return -1
		case a.pos > b.pos:
			return 1
		}
		return 0
	})
	out := make([]int32, len(slots))
	for i, s := range slots {
		out[i] = s.idx
	}
	return out
}
