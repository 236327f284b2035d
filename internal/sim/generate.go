package sim

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"kpipe/internal/claimx"
)

// Len is the number of events of the world.
func (s *Sim) Len() int { return len(s.w.events) }

// Events returns every event of the world, ordered by ingested_at. It builds
// a fresh slice on each call; for large worlds prefer Generate.
func (s *Sim) Events() []claimx.Event {
	out := make([]claimx.Event, len(s.w.events))
	var buf []byte
	for i := range s.w.events {
		if cap(buf)-len(buf) < 1024 {
			buf = make([]byte, 0, 64<<10)
		}
		out[i], buf = s.w.event(&s.w.events[i], buf)
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
	w := s.w
	m := Manifest{Assignments: make(map[int64][]ManifestEntry, len(w.assigns)), Templates: make(map[int64]int64, len(w.assigns))}
	for i := range w.assigns {
		a := &w.assigns[i]
		p := &w.projects[a.project]
		es := make([]ManifestEntry, len(a.steps))
		for k := range a.steps {
			st := &a.steps[k]
			es[k] = ManifestEntry{EventID: w.events[st.event].id, EventType: st.eventType, Status: st.status, PreviousStatus: st.prev,
				TaskID: a.template, AssignmentID: a.id, ProjectID: p.id, At: st.at}
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
}

// Sink receives one event: the key is the project id (so a project's events
// share a partition), the value the event's JSON. The sink owns both slices.
type Sink func(ctx context.Context, key, value []byte) error

// Generate delivers the world's events to sink, in timeline order unless
// ReorderWindow or DuplicateRate say otherwise, and advances the virtual
// clock (rewound first to the start of the timeline) to each event's
// ingested_at. It stops at the first sink error, or when ctx is done.
func (s *Sim) Generate(ctx context.Context, o GenerateOptions, sink Sink) error {
	n := len(s.w.events)
	if o.Limit > 0 && o.Limit < n {
		n = o.Limit
	}
	order := deliveryOrder(n, o)
	if s.nowFn == nil && n > 0 {
		s.SetNow(s.w.events[0].at.Add(-time.Millisecond))
	}
	var timer *time.Timer
	start := time.Now()
	var scratch []byte
	for i, idx := range order {
		if o.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / o.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				if timer == nil {
					timer = time.NewTimer(d)
					defer timer.Stop()
				} else {
					timer.Reset(d)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-timer.C:
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		e := &s.w.events[idx]
		var ev claimx.Event
		ev, scratch = s.w.event(e, scratch[:0])
		value := ev.AppendJSON(make([]byte, 0, len(scratch)+320))
		key := []byte(ev.ProjectID)
		if s.nowFn == nil {
			s.advance(e.at)
		}
		if err := sink(ctx, key, value); err != nil {
			return err
		}
	}
	return nil
}

// deliveryOrder returns the timeline indices 0..n-1 in delivery order.
func deliveryOrder(n int, o GenerateOptions) []int32 {
	if o.ReorderWindow <= 0 && o.DuplicateRate <= 0 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(i)
		}
		return out
	}
	r := rand.New(rand.NewPCG(uint64(o.Seed), 0x6b70697065))
	type slot struct {
		pos float64
		idx int32
	}
	slots := make([]slot, 0, n+int(float64(n)*o.DuplicateRate)+1)
	w := float64(max(o.ReorderWindow, 0))
	for i := range n {
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
