package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"kpipe/internal/claimx"
)

func get(t *testing.T, srv *httptest.Server, path, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestDeterministic(t *testing.T) {
	a := New(Options{Seed: 7, Projects: 50})
	b := New(Options{Seed: 7, Projects: 50})
	c := New(Options{Seed: 8, Projects: 50})
	ea, eb, ec := a.Events(), b.Events(), c.Events()
	if !reflect.DeepEqual(ea, eb) {
		t.Fatal("same seed, different events")
	}
	if reflect.DeepEqual(ea, ec) {
		t.Fatal("different seeds, same events")
	}
	if !reflect.DeepEqual(a.Manifest(), b.Manifest()) {
		t.Fatal("same seed, different manifests")
	}
	var ga, gb [][]byte
	for _, x := range []struct {
		s   *Sim
		out *[][]byte
	}{{a, &ga}, {b, &gb}} {
		err := x.s.Generate(t.Context(), GenerateOptions{DuplicateRate: 0.1, ReorderWindow: 5, Seed: 3}, func(_ context.Context, _, v []byte) error {
			*x.out = append(*x.out, v)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(ga, gb) {
		t.Fatal("same seed, different generated stream")
	}
	// The API answers the same too.
	srvA, srvB := httptest.NewServer(a), httptest.NewServer(b)
	defer srvA.Close()
	defer srvB.Close()
	for _, id := range a.Manifest().AssignmentIDs(0)[:10] {
		p := "/customTasks/assignment/" + itoa(id) + "?full=true"
		_, x := get(t, srvA, p, DefaultToken)
		_, y := get(t, srvB, p, DefaultToken)
		if !bytes.Equal(x, y) {
			t.Fatalf("%s differs between equal worlds", p)
		}
	}
}

func itoa(i int64) string { return strings.TrimSpace(string(must(json.Marshal(i)))) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestLifecyclesValid(t *testing.T) {
	s := New(Options{Seed: 42, Projects: 400})
	m := s.Manifest()
	seen := map[string]bool{}
	if n := len(m.AssignmentIDs(TemplateITelCabinet)); n < 100 {
		t.Fatalf("only %d iTel assignments of %d", n, len(m.Assignments))
	}
	for id, es := range m.Assignments {
		prev := ""
		for i, e := range es {
			seen[e.Status] = true
			if i > 0 && e.At.Before(es[i-1].At) {
				t.Fatalf("assignment %d: event %d goes back in time", id, i)
			}
			if e.EventType == claimx.EventCustomTaskUpdated {
				if e.Status != prev {
					t.Fatalf("assignment %d: update changes status %s → %s", id, prev, e.Status)
				}
				continue
			}
			if !ValidTransition(prev, e.Status) {
				t.Fatalf("assignment %d: invalid transition %q → %q", id, prev, e.Status)
			}
			if e.PreviousStatus != prev {
				t.Fatalf("assignment %d: previous_status %q, want %q", id, e.PreviousStatus, prev)
			}
			want := claimx.EventCustomTaskStatusChanged
			switch e.Status {
			case claimx.StatusAssigned:
				want = claimx.EventCustomTaskAssigned
			case claimx.StatusCompleted:
				want = claimx.EventCustomTaskCompleted
			}
			if e.EventType != want {
				t.Fatalf("assignment %d: %s event for status %s", id, e.EventType, e.Status)
			}
			prev = e.Status
		}
	}
	for _, st := range []string{"assigned", "in_progress", "completed", "reassigned", "reopened", "cancelled"} {
		if !seen[st] {
			t.Errorf("no lifecycle reaches %s", st)
		}
	}
	// Every event parses and the manifest matches the event stream.
	taskEvents := 0
	byID := map[string]claimx.Event{}
	for i, e := range s.Events() {
		b := must(json.Marshal(e))
		got, err := claimx.ParseEvent(b)
		if err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, b)
		}
		if !got.IngestedAt.Equal(e.IngestedAt) || got.EventID != e.EventID {
			t.Fatalf("event %d round trip: %+v vs %+v", i, got, e)
		}
		if _, dup := byID[e.EventID]; dup {
			t.Fatalf("duplicate event id %s", e.EventID)
		}
		byID[e.EventID] = e
		if e.IsTaskEvent() {
			taskEvents++
		}
	}
	if taskEvents != m.Count(0) {
		t.Fatalf("%d task events, manifest has %d", taskEvents, m.Count(0))
	}
	for _, me := range m.EventsForTemplate(TemplateITelCabinet) {
		e := byID[me.EventID]
		raw := must(e.Raw())
		if got, _ := raw.Int64("customTaskId"); got != TemplateITelCabinet {
			t.Fatalf("event %s: customTaskId %d", me.EventID, got)
		}
		if st, _ := raw.String("status"); st != me.Status || e.TaskAssignmentID.Value != me.AssignmentID {
			t.Fatalf("event %s: status %s, want %s", me.EventID, st, me.Status)
		}
	}
}

func TestAPIAsOfClock(t *testing.T) {
	s := New(Options{Seed: 1, Projects: 30})
	srv := httptest.NewServer(s)
	defer srv.Close()
	m := s.Manifest()
	var id int64
	for _, a := range m.AssignmentIDs(TemplateITelCabinet) {
		if len(m.Assignments[a]) >= 3 {
			id = a
			break
		}
	}
	es := m.Assignments[id]
	path := "/customTasks/assignment/" + itoa(id) + "?full=true"
	s.SetNow(es[0].At.Add(-time.Second))
	if code, _ := get(t, srv, path, DefaultToken); code != http.StatusNotFound {
		t.Fatalf("before creation: status %d, want 404", code)
	}
	for _, e := range es {
		s.SetNow(e.At)
		code, body := get(t, srv, path, DefaultToken)
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		row := must(claimx.DecodeRow(body))
		if st, _ := row.String("status"); st != e.Status {
			t.Fatalf("at %s: status %s, want %s", e.At, st, e.Status)
		}
		if tid, _ := row.Int64("task_id"); tid != TemplateITelCabinet {
			t.Fatalf("task_id %d", tid)
		}
		if _, ok := row.Time("created_at"); !ok {
			t.Fatalf("created_at missing: %s", body)
		}
		_, done := row.Time("completed_at")
		if done != (e.Status == claimx.StatusCompleted) {
			t.Fatalf("status %s with completed_at set=%v", e.Status, done)
		}
	}
	for _, p := range []string{"/api/v1/tasks/32513", "/api/v1/projects/" + es[0].ProjectID, "/export/project/" + es[0].ProjectID} {
		code, body := get(t, srv, p, DefaultToken)
		if code != 200 || !json.Valid(body) {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	if code, _ := get(t, srv, "/api/v1/tasks/32513", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	if code, _ := get(t, srv, "/api/v1/tasks/32513", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := get(t, srv, "/api/v1/tasks/99999", DefaultToken); code != http.StatusNotFound {
		t.Fatalf("unknown template: %d", code)
	}
}

func TestGenerateAdvancesClockAndOptions(t *testing.T) {
	s := New(Options{Seed: 5, Projects: 40})
	n := s.Len()
	var mu sync.Mutex
	count := map[string]int{}
	var last time.Time
	outOfOrder := 0
	err := s.Generate(t.Context(), GenerateOptions{DuplicateRate: 0.2, ReorderWindow: 8, Seed: 9}, func(_ context.Context, k, v []byte) error {
		e, err := claimx.ParseEvent(v)
		if err != nil {
			return err
		}
		if string(k) != e.ProjectID {
			t.Errorf("key %s, project %s", k, e.ProjectID)
		}
		mu.Lock()
		count[e.EventID]++
		if e.IngestedAt.Before(last) {
			outOfOrder++
		}
		last = e.IngestedAt
		mu.Unlock()
		if s.Now().Before(e.IngestedAt) {
			t.Errorf("clock %s behind event %s", s.Now(), e.IngestedAt)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dups := 0
	for _, c := range count {
		dups += c - 1
	}
	if len(count) != n || dups < n/10 || outOfOrder == 0 {
		t.Fatalf("distinct %d of %d, dups %d, out of order %d", len(count), n, dups, outOfOrder)
	}
	// Rate and limit.
	start := time.Now()
	got := 0
	err = s.Generate(t.Context(), GenerateOptions{Rate: 200, Limit: 20}, func(context.Context, []byte, []byte) error { got++; return nil })
	if err != nil || got != 20 {
		t.Fatalf("limit: %d events, %v", got, err)
	}
	if el := time.Since(start); el < 80*time.Millisecond {
		t.Fatalf("20 events at 200/s took %s", el)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Generate(ctx, GenerateOptions{Rate: 1}, func(context.Context, []byte, []byte) error { return nil }); err != context.Canceled {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestEventsOption(t *testing.T) {
	s := New(Options{Seed: 1, Events: 10000})
	if n := s.Len(); n < 8000 || n > 13000 {
		t.Fatalf("Events 10000 gave %d events", n)
	}
}

// TestTaskEvents: TaskEvents lists, in timeline order, exactly the task
// events among the first n of Events, each with its assignment's template
// as the manifest has it.
func TestTaskEvents(t *testing.T) {
	s := New(Options{Seed: 3, Events: 2000})
	m := s.Manifest()
	template := map[string]int64{}
	for aid, es := range m.Assignments {
		for _, e := range es {
			template[e.EventID] = m.Templates[aid]
		}
	}
	const n = 1500
	var want []string
	for i, e := range s.Events() {
		if _, ok := template[e.EventID]; ok && i < n {
			want = append(want, e.EventID)
		}
	}
	var got []string
	s.TaskEvents(n, func(id string, taskID int64) {
		if taskID != template[id] {
			t.Errorf("event %s: task %d, want %d", id, taskID, template[id])
		}
		got = append(got, id)
	})
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("TaskEvents(%d) listed %d events, want the %d task events of Events in order", n, len(got), len(want))
	}
	all := 0
	s.TaskEvents(0, func(string, int64) { all++ })
	if all != len(template) {
		t.Fatalf("TaskEvents(0) listed %d events, want all %d", all, len(template))
	}
}

func TestParseFaults(t *testing.T) {
	f, err := ParseFaults("latency=5ms-20ms,500=0.05,503=0.01,429=0.01,retry_after=2s,hang=0.001,malformed=0.01,outage=30s-45s")
	if err != nil {
		t.Fatal(err)
	}
	want := Faults{LatencyMin: 5 * time.Millisecond, LatencyMax: 20 * time.Millisecond, ErrorRates: map[int]float64{500: 0.05, 503: 0.01},
		RateLimit429: 0.01, RetryAfter: 2 * time.Second, HangRate: 0.001, MalformedRate: 0.01, Outages: []Window{{30 * time.Second, 45 * time.Second}}}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("got %+v, want %+v", f, want)
	}
	g, err := ParseFaults(f.String())
	if err != nil || !reflect.DeepEqual(g, f) {
		t.Fatalf("String round trip: %v %+v", err, g)
	}
	var h Faults
	if err := json.Unmarshal(must(json.Marshal(f)), &h); err != nil || !reflect.DeepEqual(h, f) {
		t.Fatalf("JSON round trip: %v %+v", err, h)
	}
	for _, bad := range []string{"latency", "foo=1", "500=2", "500=0.6,502=0.6", "outage=5s", "200=0.1", "latency=5ms-1ms"} {
		if _, err := ParseFaults(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestAdminFaults(t *testing.T) {
	s := New(Options{Seed: 1, Projects: 5})
	srv := httptest.NewServer(s)
	defer srv.Close()
	put := func(body string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL+"/admin/faults", strings.NewReader(body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := put(`{"error_rates":{"503":1}}`); c != 200 {
		t.Fatalf("PUT: %d", c)
	}
	if c, _ := get(t, srv, "/api/v1/tasks/32513", DefaultToken); c != 503 {
		t.Fatalf("after PUT 503=1: %d", c)
	}
	if c, b := get(t, srv, "/admin/faults", ""); c != 200 || !strings.Contains(string(b), `"503":1`) {
		t.Fatalf("GET faults: %d %s", c, b)
	}
	if c := put(`{"bogus":1}`); c != 400 {
		t.Fatalf("unknown field: %d", c)
	}
	if c := put(`{}`); c != 200 {
		t.Fatalf("clear: %d", c)
	}
	if c, _ := get(t, srv, "/api/v1/tasks/32513", DefaultToken); c != 200 {
		t.Fatalf("after clear: %d", c)
	}
	if st := s.Stats(); st.ByStatus[503] != 1 || st.ByStatus[200] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func BenchmarkGenerate(b *testing.B) {
	s := New(Options{Seed: 1, Events: 100_000})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		n := 0
		s.Generate(b.Context(), GenerateOptions{}, func(context.Context, []byte, []byte) error { n++; return nil })
	}
	b.ReportMetric(float64(s.Len()*b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkNew100k(b *testing.B) {
	for range b.N {
		New(Options{Seed: int64(b.N), Events: 100_000})
	}
}

func TestAdminClockAndOptionsNow(t *testing.T) {
	s := New(Options{Seed: 2, Projects: 3})
	srv := httptest.NewServer(s)
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL+"/admin/clock", strings.NewReader(`{"now":"2025-12-31T00:00:00Z"}`))
	resp, err := srv.Client().Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT clock: %v", err)
	}
	resp.Body.Close()
	if code, _ := get(t, srv, "/api/v1/projects/5000000", DefaultToken); code != 404 {
		t.Fatalf("project before the timeline: %d", code)
	}
	if code, b := get(t, srv, "/admin/clock", ""); code != 200 || !strings.Contains(string(b), "2025-12-31T00:00:00Z") {
		t.Fatalf("GET clock: %d %s", code, b)
	}
	fixed := New(Options{Seed: 2, Projects: 3, Now: func() time.Time { return DefaultBaseTime.Add(365 * 24 * time.Hour) }})
	fixed.SetNow(time.Time{}) // ignored: Options.Now wins
	if !fixed.Now().Equal(DefaultBaseTime.Add(365 * 24 * time.Hour)) {
		t.Fatalf("Options.Now ignored: %s", fixed.Now())
	}
}

// BenchmarkServe measures the handler alone (no network).
func BenchmarkServe(b *testing.B) {
	s := New(Options{Seed: 1, Projects: 1000})
	ids := s.Manifest().AssignmentIDs(0)
	for _, bc := range []struct{ name, path string }{
		{"assignment", "/customTasks/assignment/" + itoa(ids[len(ids)/2]) + "?full=true"},
		{"export", "/export/project/5000500"},
		{"template", "/api/v1/tasks/32513"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.path, nil)
			req.Header.Set("Authorization", "Bearer "+DefaultToken)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					s.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Errorf("status %d", w.Code)
						return
					}
				}
			})
		})
	}
}
