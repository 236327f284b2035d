package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/dlq"
	"kpipe/internal/sim"
)

// checkTimeline compares the table's rows with the manifest entries: one row
// per event, and per assignment the statuses in timeline order.
func checkTimeline(t *testing.T, rows []map[string]any, want []sim.ManifestEntry) {
	t.Helper()
	byID := map[string]map[string]any{}
	for _, r := range rows {
		id, _ := r["event_id"].(string)
		if _, dup := byID[id]; dup {
			t.Fatalf("event %s written twice", id)
		}
		byID[id] = r
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows, want %d", len(rows), len(want))
	}
	type step struct {
		at     time.Time
		status string
	}
	got := map[int64][]step{}
	exp := map[int64][]step{}
	for _, e := range want {
		r, ok := byID[e.EventID]
		if !ok {
			t.Fatalf("event %s (%s of assignment %d) missing", e.EventID, e.Status, e.AssignmentID)
		}
		ts, _ := r["event_timestamp"].(time.Time)
		if !ts.Equal(e.At) {
			t.Fatalf("event %s: event_timestamp %v, want %v", e.EventID, ts, e.At)
		}
		if r["task_id"] != int32(templateID) || r["task_status"] != e.Status {
			t.Fatalf("event %s: row %v, want task 32513 status %s", e.EventID, r, e.Status)
		}
		if r["year"] != int32(e.At.Year()) || r["month"] != int32(e.At.Month()) || r["day"] != int32(e.At.Day()) {
			t.Fatalf("event %s: partition %v/%v/%v, want %v", e.EventID, r["year"], r["month"], r["day"], e.At)
		}
		got[e.AssignmentID] = append(got[e.AssignmentID], step{ts, r["task_status"].(string)})
		exp[e.AssignmentID] = append(exp[e.AssignmentID], step{e.At, e.Status})
	}
	for id, steps := range got {
		sort.SliceStable(steps, func(i, j int) bool { return steps[i].at.Before(steps[j].at) })
		if !slices.Equal(steps, exp[id]) {
			t.Fatalf("assignment %d: timeline %v, want %v", id, steps, exp[id])
		}
	}
}

func newTestWorker(t testing.TB, e *env, tbl table, opts ...WorkerOption) *Worker {
	t.Helper()
	w, err := NewWorker(t.Context(), e.worker, e.kopts(), registryWith(tbl), e.deps(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

// Scenarios 1 and 2 of SPEC.md: every task event of template 32513 lands
// once, enriched, and each assignment's timeline in the table is the
// manifest's.
func TestWorkerTracksEveryEvent(t *testing.T) {
	t.Run("mem", func(t *testing.T) { testTracksEveryEvent(t, func(e *env) sink { return memSink(newMemTable()) }) })
	t.Run("delta", func(t *testing.T) {
		testTracksEveryEvent(t, func(e *env) sink { return deltaSink(t, t.TempDir()) })
	})
}

func testTracksEveryEvent(t *testing.T, mk func(*env) sink) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 1, Projects: 60})
	want := e.entries()
	if len(want) < 50 {
		t.Fatalf("world too small: %d events", len(want))
	}
	s := mk(e)
	// Scenario 1: the first event alone (a task creation).
	w := e.newWorker(t, s)
	stop := runWorker(t, ctx, w)
	e.produceTracking(ctx, want[:1])
	waitFor(t, 20*time.Second, "first row", func() bool { return len(s.rows()) == 1 })
	row := s.rows()[0]
	if row["event_id"] != want[0].EventID || row["task_status"] != want[0].Status {
		t.Fatalf("first row %v, want event %s status %s", row, want[0].EventID, want[0].Status)
	}
	full, ok := row["claimx_task_full"].(map[string]any)
	if !ok || len(full) == 0 {
		t.Fatalf("claimx_task_full = %v, want the template from the API", row["claimx_task_full"])
	}
	if _, ok := row["processed_timestamp"].(time.Time); !ok {
		t.Fatalf("processed_timestamp = %T", row["processed_timestamp"])
	}
	// Scenario 2: the rest, every status transition.
	e.produceTracking(ctx, want[1:])
	waitFor(t, 30*time.Second, "all rows", func() bool { return len(s.rows()) >= len(want) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkTimeline(t, s.rows(), want)

	succ := e.readTopic(ctx, successTopic, len(want), 10*time.Second)
	if len(succ) != len(want) {
		t.Fatalf("got %d success records, want %d", len(succ), len(want))
	}
	var sr SuccessRecord
	if err := json.Unmarshal(succ[0].Value, &sr); err != nil {
		t.Fatal(err)
	}
	if sr.Fields["event_id"] != want[0].EventID || sr.Table != "itel_cabinet_task_tracking" || sr.TableVersion < 0 || sr.ProcessedAt.IsZero() {
		t.Fatalf("success record %+v", sr)
	}
	// The writer keeps only the fields the worker reads after a commit
	// (RetainFields): each success record still carries its event's
	// configured fields, as the row has them, and the status counts add up.
	rowOf := map[any]map[string]any{}
	statuses := map[string]float64{}
	for _, r := range s.rows() {
		rowOf[r["event_id"]] = r
		statuses[r["task_status"].(string)]++
	}
	for _, rec := range succ {
		var sr SuccessRecord
		if err := json.Unmarshal(rec.Value, &sr); err != nil {
			t.Fatal(err)
		}
		row := rowOf[sr.Fields["event_id"]]
		if row == nil || len(sr.Fields) != len(e.worker.SuccessRecord.Fields) {
			t.Fatalf("success record %s: fields %v, no row or not the %d configured", rec.Value, sr.Fields, len(e.worker.SuccessRecord.Fields))
		}
		for _, f := range e.worker.SuccessRecord.Fields {
			got := sr.Fields[f]
			if x, ok := got.(float64); ok && x == math.Trunc(x) {
				got = int64(x) // JSON numbers decode as float64
			}
			if fmt.Sprint(got) != fmt.Sprint(row[f]) {
				t.Fatalf("success record %s: %s = %v, the row has %v", rec.Value, f, sr.Fields[f], row[f])
			}
		}
	}
	for status, n := range statuses {
		if got := testutil.ToFloat64(e.metrics.RowsByStatus.WithLabelValues(workerName, status)); got != n {
			t.Fatalf("rows with status %s: metric %v, table %v", status, got, n)
		}
	}
	// The live page's newest rows are table rows: the status column first,
	// and the table's columns.
	st := w.Status()
	if len(st.Rows) == 0 || len(st.Columns) < 5 || st.Columns[0] != "task_status" || !slices.Contains(st.Columns, "event_id") {
		t.Fatalf("live page rows: columns %q, %d rows", st.Columns, len(st.Rows))
	}
	if errs := e.readTopic(ctx, errorTopic, -1, 500*time.Millisecond); len(errs) != 0 {
		t.Fatalf("got %d error records, want none: %s", len(errs), errs[0].Value)
	}
	if got := testutil.ToFloat64(e.metrics.WorkerMessagesProcessed.WithLabelValues(workerName)); got != float64(len(want)) {
		t.Fatalf("processed metric %v, want %d", got, len(want))
	}
	if got := testutil.ToFloat64(e.metrics.WorkerClaimXAPICalls.WithLabelValues(workerName)); got < 1 || got > 5 {
		t.Fatalf("API calls %v: want about one per TTL for task 32513", got)
	}
}

// Scenario 3 of SPEC.md: ClaimX down → rows written with null enrichment and
// error records; a validation failure and malformed JSON → error topic and
// not written; the worker stays up.
func TestWorkerErrorHandling(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 2, Projects: 10})
	e.cfg.Connections["claimx_api"].MaxRetries = 0
	want := e.entries()[:20]
	if err := e.sim.SetFaults(sim.Faults{ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	tbl := newMemTable()
	w := newTestWorker(t, e, tbl)
	stop := runWorker(t, ctx, w)
	e.produceTracking(ctx, want[:10])

	bad := map[string]any{"event_id": "bad-task", "event_type": "CUSTOM_TASK_ASSIGNED", "project_id": "1", "task_id": 99, "task_status": "assigned", "timestamp": "2026-01-05T08:00:00Z"}
	badJSON, _ := json.Marshal(bad)
	e.produce(ctx, &kgo.Record{Key: []byte("1"), Value: badJSON}, &kgo.Record{Key: []byte("2"), Value: []byte(`{"event_id": "trunc`)})
	waitFor(t, 20*time.Second, "rows during the outage", func() bool { return len(tbl.snapshot()) == 10 })
	for _, r := range tbl.snapshot() {
		if r["claimx_task_full"] != nil {
			t.Fatalf("claimx_task_full = %v during an outage, want null", r["claimx_task_full"])
		}
	}
	errs := e.readTopic(ctx, errorTopic, 12, 10*time.Second)
	classes := map[string]int{}
	for _, r := range errs {
		var er dlq.Record
		if err := json.Unmarshal(r.Value, &er); err != nil {
			t.Fatal(err)
		}
		classes[er.Class]++
		switch er.Class {
		case dlq.ClassLookup:
			if !er.RowWritten || er.Handler != TypeLookup || string(er.Original) == "null" {
				t.Fatalf("lookup error record %+v", er)
			}
		case dlq.ClassValidation:
			if er.Rule != "task_id.equals" || er.RowWritten {
				t.Fatalf("validation error record %+v", er)
			}
		case dlq.ClassMalformed:
			if string(er.OriginalBase64) != `{"event_id": "trunc` || string(er.Original) != "null" {
				t.Fatalf("malformed error record %+v", er)
			}
		}
	}
	if classes[dlq.ClassLookup] != 10 || classes[dlq.ClassValidation] != 1 || classes[dlq.ClassMalformed] != 1 {
		t.Fatalf("error records by class %v, want 10 lookup, 1 validation, 1 malformed", classes)
	}
	// The API comes back: the worker is alive and enriches again.
	if err := e.sim.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	e.produceTracking(ctx, want[10:])
	waitFor(t, 20*time.Second, "rows after the outage", func() bool { return len(tbl.snapshot()) == 20 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	rows := tbl.snapshot()
	if rows[19]["claimx_task_full"] == nil {
		t.Fatalf("row after the outage not enriched: %v", rows[19])
	}
	for _, r := range rows {
		if r["event_id"] == "bad-task" {
			t.Fatal("a message failing validation was written")
		}
	}
}

// With the ClaimX API down from the very first event, a fresh table has no
// claimx_task_full column yet (it is inferred from the first value): the
// rows are still written, with the enrichment null, and the column joins
// the schema once the API answers again.
func TestWorkerAPIDownOnFreshTable(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 2, Projects: 10})
	e.cfg.Connections["claimx_api"].MaxRetries = 0
	want := e.entries()[:20]
	if err := e.sim.SetFaults(sim.Faults{ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	s := deltaSink(t, t.TempDir())
	w := e.newWorker(t, s)
	stop := runWorker(t, ctx, w)
	e.produceTracking(ctx, want[:10])
	waitFor(t, 20*time.Second, "rows during the outage", func() bool { return len(s.rows()) == 10 })
	for _, r := range s.rows() {
		if r["claimx_task_full"] != nil {
			t.Fatalf("claimx_task_full = %v during an outage, want null", r["claimx_task_full"])
		}
	}
	if errs := e.readTopic(ctx, errorTopic, 10, 10*time.Second); len(errs) != 10 {
		t.Fatalf("got %d error records, want 10 lookup failures", len(errs))
	}
	if err := e.sim.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	e.produceTracking(ctx, want[10:])
	waitFor(t, 20*time.Second, "rows after the outage", func() bool { return len(s.rows()) == 20 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkTimeline(t, s.rows(), want)
	enriched := 0
	for _, r := range s.rows() {
		if full, ok := r["claimx_task_full"].(map[string]any); ok && len(full) > 0 {
			enriched++
		}
	}
	if enriched != 10 {
		t.Fatalf("%d rows enriched, want the 10 written after the outage", enriched)
	}
}
