package pipeline

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kpipe/internal/config"
	"kpipe/internal/dlq"
)

// countingGetter answers after a delay and counts calls per path.
type countingGetter struct {
	delay time.Duration
	fail  atomic.Bool
	mu    sync.Mutex
	calls map[string]int
}

func (g *countingGetter) GetJSON(ctx context.Context, path string, _ url.Values) (map[string]any, error) {
	g.mu.Lock()
	g.calls[path]++
	g.mu.Unlock()
	time.Sleep(g.delay)
	if g.fail.Load() {
		return nil, errors.New("503 Service Unavailable")
	}
	return map[string]any{"path": path}, nil
}

func newLookupForTest(t *testing.T, g JSONGetter, onError string, ttl float64) *Lookup {
	t.Helper()
	cfg := lookupDefaults()
	cfg.Connection, cfg.Endpoint, cfg.ResultField, cfg.CacheTTL, cfg.OnError = "c", "/api/v1/tasks/{task_id}", "details", ttl, onError
	cfg.PathParams = map[string]string{"task_id": "task.id"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l, err := NewLookup(cfg, g, Deps{WorkerName: "w"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

func ev(taskID int64) *Event {
	return &Event{Fields: map[string]any{"task": map[string]any{"id": taskID}}}
}

// Concurrent batches asking for the same key make one call per TTL.
func TestLookupOneCallPerKeyUnderConcurrency(t *testing.T) {
	g := &countingGetter{delay: 20 * time.Millisecond, calls: map[string]int{}}
	l := newLookupForTest(t, g, OnErrorLogAndContinue, 60)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			evs := []*Event{ev(32513), ev(32513), ev(7)}
			res, err := l.HandleBatch(t.Context(), evs)
			if err != nil {
				t.Error(err)
				return
			}
			for i, r := range res {
				if r.Err != nil || len(r.Events) != 1 || evs[i].Fields["details"] == nil {
					t.Errorf("result %d: %+v", i, r)
				}
			}
		})
	}
	wg.Wait()
	if g.calls["/api/v1/tasks/32513"] != 1 || g.calls["/api/v1/tasks/7"] != 1 {
		t.Fatalf("calls %v, want one per key", g.calls)
	}
}

func TestLookupOnError(t *testing.T) {
	for _, tc := range []struct {
		onError     string
		wantErr     bool
		wantRecords int
	}{
		{OnErrorLogAndContinue, false, 1},
		{OnErrorFail, true, 0},
	} {
		t.Run(tc.onError, func(t *testing.T) {
			g := &countingGetter{calls: map[string]int{}}
			g.fail.Store(true)
			l := newLookupForTest(t, g, tc.onError, 60)
			e := ev(1)
			out, err := l.Handle(t.Context(), e)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr {
				if len(out) != 1 || e.Fields["details"] != nil {
					t.Fatalf("got %v with details %v, want the event with null details", out, e.Fields["details"])
				}
			}
			if len(e.Errors) != tc.wantRecords {
				t.Fatalf("got %d recorded errors, want %d", len(e.Errors), tc.wantRecords)
			}
			// Failures are not cached: the next call goes out again.
			g.fail.Store(false)
			if _, err := l.Handle(t.Context(), ev(1)); err != nil {
				t.Fatal(err)
			}
			if g.calls["/api/v1/tasks/1"] != 2 {
				t.Fatalf("calls %v, want 2", g.calls)
			}
		})
	}
}

func TestRegistryRejectsDuplicatesAndEmptyNames(t *testing.T) {
	r := NewRegistry()
	if err := r.Register("", transformFactory); err == nil {
		t.Fatal("empty name accepted")
	}
	if err := r.Register("x", transformFactory); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("x", transformFactory); !errors.Is(err, ErrDuplicateHandler) {
		t.Fatalf("got %v, want ErrDuplicateHandler", err)
	}
	if got := DefaultRegistry().Names(); len(got) != 4 {
		t.Fatalf("default handlers %v", got)
	}
}

func TestTransformAndValidation(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tr := NewTransform(&TransformConfig{
		Mappings: map[string]string{"event_timestamp": "timestamp", "created_at": "task.created_at", "gone": "task.nope"},
		Defaults: map[string]any{"source": "s", "processed_at": config.CurrentTimestamp},
	}, func() time.Time { return now })
	e := &Event{Fields: map[string]any{"timestamp": "t", "task": map[string]any{"created_at": "c"}, "task_id": int64(32513)}}
	if _, err := tr.Handle(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if e.Fields["event_timestamp"] != "t" || e.Fields["created_at"] != "c" || e.Fields["gone"] != nil || e.Fields["source"] != "s" || e.Fields["processed_at"] != now {
		t.Fatalf("fields %v", e.Fields)
	}
	skip := "task_status == 'cancelled'"
	v, err := NewValidation(&ValidationConfig{
		RequiredFields: []string{"task_id"},
		FieldRules:     map[string]*FieldRule{"task_id": {Equals: 32513}},
		SkipIf:         &skip,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		fields   map[string]any
		wantRule string
		wantOut  int
	}{
		{"ok", map[string]any{"task_id": int64(32513)}, "", 1},
		{"float equals", map[string]any{"task_id": 32513.0}, "", 1},
		{"missing", map[string]any{}, "required.task_id", 0},
		{"other task", map[string]any{"task_id": int64(1)}, "task_id.equals", 0},
		{"skipped", map[string]any{"task_id": int64(1), "task_status": "cancelled"}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := v.Handle(t.Context(), &Event{Fields: tc.fields})
			var he *HandlerError
			if tc.wantRule != "" {
				if !errors.As(err, &he) || he.Rule != tc.wantRule || he.Class != dlq.ClassValidation {
					t.Fatalf("got %v, want rule %s", err, tc.wantRule)
				}
				return
			}
			if err != nil || len(out) != tc.wantOut {
				t.Fatalf("got %v, %v; want %d events", out, err, tc.wantOut)
			}
		})
	}
}
