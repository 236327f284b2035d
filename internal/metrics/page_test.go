package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestLivePageStatusJSON(t *testing.T) {
	ready := func(context.Context) error { return fmt.Errorf("%w: claimx lookups failing", ErrDegraded) }
	reg := NewRegistry()
	m := New(reg)
	srv := NewServer("127.0.0.1:0", reg, ready, nil)
	rec := NewRecent("tracking worker w1", "last table commits", "newest rows written", "task_status")
	srv.AddStatus(rec, nil)
	m.DeltaRowsWritten.WithLabelValues("t1").Add(42)
	m.DeltaCommitLatency.WithLabelValues("t1").Observe(0.01)
	m.DeltaCommitLatency.WithLabelValues("t1").Observe(0.02)
	m.DeltaTableVersion.WithLabelValues("t1").Set(7)
	m.DeltaStorageUp.WithLabelValues("t1").Set(1)
	m.ConsumerLag.WithLabelValues("g1", "topic1", "0").Set(3)
	m.ConsumerLag.WithLabelValues("g1", "topic1", "1").Set(4)
	m.Errors.WithLabelValues("w1", "validation").Add(5)
	m.EnrichEventsFailed.WithLabelValues("e1", "not_found").Add(2)
	m.Ready.WithLabelValues("w1").Set(1)
	rec.Commit(Commit{Time: time.Unix(100, 0), Target: "t1", Version: 7, Rows: 42})
	rec.Rows(map[string]any{"event_id": "e1", "task_status": "assigned", "nested": map[string]any{"x": 1}, "n": int64(3)})

	h := srv.Handler()
	body := serve(t, h, "/status.json", "application/json")
	var st StatusJSON
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if st.Ready != "degraded" || !strings.Contains(st.Reason, "claimx lookups failing") {
		t.Errorf("ready %q reason %q", st.Ready, st.Reason)
	}
	tp := map[string]float64{}
	for _, x := range st.Throughput {
		tp[x.Key] = x.Total
	}
	if tp["kpipe_delta_rows_written_total"] != 42 || tp["kpipe_delta_commit_latency_seconds_count"] != 2 {
		t.Errorf("throughput %v", st.Throughput)
	}
	if _, ok := tp["kpipe_enrich_events_consumed_total"]; ok {
		t.Errorf("a counter without series is shown: %v", st.Throughput)
	}
	if len(st.Lag) != 1 || st.Lag[0].Lag != 7 || st.Lag[0].Partitions != 2 {
		t.Errorf("lag %+v", st.Lag)
	}
	if len(st.Errors) != 2 || st.Errors[0].Class != "validation" || st.Errors[0].Count != 5 || st.Errors[1].Class != "not_found" {
		t.Errorf("errors %+v", st.Errors)
	}
	if len(st.Tables) != 1 || st.Tables[0].Version != 7 || st.Tables[0].StorageUp == nil || !*st.Tables[0].StorageUp {
		t.Errorf("tables %+v", st.Tables)
	}
	if len(st.Workers) != 1 || !st.Workers[0].Ready {
		t.Errorf("workers %+v", st.Workers)
	}
	if len(st.Sections) != 1 {
		t.Fatalf("sections %+v", st.Sections)
	}
	s := st.Sections[0]
	if s.Title != "tracking worker w1" || len(s.Commits) != 1 || s.Commits[0].Version != 7 ||
		strings.Join(s.Columns, ",") != "task_status,event_id,n" || strings.Join(s.Rows[0], ",") != "assigned,e1,3" {
		t.Errorf("section %+v", s)
	}

	page := serve(t, h, "/", "text/html; charset=utf-8")
	if !strings.Contains(page, "status.json") {
		t.Error("the page does not fetch status.json")
	}
	// No external assets: nothing loaded from another origin.
	if ext := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`).FindString(page); ext != "" {
		t.Errorf("the page loads an external asset: %s", ext)
	}
	if code, _, _ := get404(t, h, "/nothing"); code != 404 {
		t.Errorf("/nothing: %d, want 404", code)
	}
}

func TestLivePageNotReady(t *testing.T) {
	srv := NewServer("127.0.0.1:0", NewRegistry(), func(context.Context) error { return errors.New("kafka unreachable") }, nil)
	var st StatusJSON
	if err := json.Unmarshal([]byte(serve(t, srv.Handler(), "/status.json", "application/json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ready != "not ready" || st.Reason != "kafka unreachable" || st.Sections == nil || st.Throughput == nil {
		t.Errorf("%+v", st)
	}
}

func TestRecentKeepsTheNewest(t *testing.T) {
	r := NewRecent("w", "c", "r")
	for i := range 25 {
		r.Commit(Commit{Version: int64(i)})
		r.Rows(map[string]any{"i": int64(i), "long": strings.Repeat("é", 100)})
	}
	st := r.Status()
	if len(st.Commits) != maxRecentCommits || st.Commits[0].Version != 24 || st.Commits[9].Version != 15 {
		t.Errorf("commits %+v", st.Commits)
	}
	if len(st.Rows) != MaxRecentRows || st.Rows[0][0] != "24" || !strings.HasSuffix(st.Rows[0][1], "…") || len(st.Rows[0][1]) > maxCellBytes+3 {
		t.Errorf("columns %v rows %q", st.Columns, st.Rows)
	}
	var nilRecent *Recent
	nilRecent.Commit(Commit{})
	nilRecent.Rows(map[string]any{"a": 1})
	if st := nilRecent.Status(); st.Title != "" {
		t.Errorf("nil Recent: %+v", st)
	}
}

// serve GETs path from h, wants 200 with content type ct, and returns the body.
func serve(t *testing.T, h http.Handler, path, ct string) string {
	t.Helper()
	code, body, got := get404(t, h, path)
	if code != http.StatusOK || got != ct {
		t.Fatalf("GET %s: %d %q, want 200 %q\n%s", path, code, got, ct, body)
	}
	return body
}

func get404(t *testing.T, h http.Handler, path string) (int, string, string) {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
	return rr.Code, rr.Body.String(), rr.Header().Get("Content-Type")
}
