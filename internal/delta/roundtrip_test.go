package delta

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const specTableDef = "../../config/tables/itel_cabinet_task_tracking.yaml"

func newSpecTable(t testing.TB, opts ...Option) (*Table, Storage) {
	t.Helper()
	store, err := NewLocalStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return createSpecTable(t, store, opts...), store
}

// createSpecTable creates the SPEC table in store.
func createSpecTable(t testing.TB, store Storage, opts ...Option) *Table {
	t.Helper()
	def, err := LoadTableDef(specTableDef)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Create(t.Context(), store, def, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// specRow builds a SPEC-shaped row; commit c gains nested fields.
func specRow(c, i int, ts time.Time) map[string]any {
	task := map[string]any{
		"task_id":       float64(32513),
		"assignment_id": float64(1000 + i),
		"status":        "assigned",
		"form":          map[string]any{"name": "iTel Cabinet Repair Form", "version": float64(c)},
	}
	for k := 0; k < c; k++ {
		task[fmt.Sprintf("extra_%d", k)] = fmt.Sprintf("v%d-ü-✓", k)
	}
	if c >= 3 {
		task["form"].(map[string]any)[fmt.Sprintf("nested_%d", c)] = 1.5
	}
	row := map[string]any{
		"event_id":            fmt.Sprintf("evt-%d-%d", c, i),
		"event_type":          "CUSTOM_TASK_ASSIGNED",
		"event_timestamp":     ts,
		"processed_timestamp": ts.Add(time.Second),
		"task_id":             32513,
		"assignment_id":       int64(1000 + i),
		"project_id":          fmt.Sprint(12345 + i),
		"task_status":         "assigned",
		"task_name":           "iTel Cabinet Documentation — ünïcödé ✓",
		"assigned_to_user_id": nil,
		"assigned_by_user_id": int32(7),
		"task_created_at":     ts.Add(-time.Hour),
		"task_completed_at":   nil,
		"claimx_task_full":    task,
		"original_event":      map[string]any{"event_id": fmt.Sprintf("evt-%d-%d", c, i), "raw": map[string]any{"n": float64(i)}},
		"project_data":        nil,
		"tracking_version":    "1",
		"source":              "kpipe",
		"year":                ts.UTC().Year(),
		"month":               int(ts.UTC().Month()),
		"day":                 ts.UTC().Day(),
	}
	if i%3 == 0 {
		row["project_data"] = map[string]any{"project_id": fmt.Sprint(12345 + i), "tags": []any{"a", "b"}}
	}
	if i%4 == 0 {
		row["task_name"] = nil
	}
	return row
}

func TestRoundTripSpecTable(t *testing.T) {
	store, err := NewLocalStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testRoundTripSpecTable(t, store)
}

// testRoundTripSpecTable creates the SPEC table in store, appends ten
// commits (a checkpoint at 10) and reads them back.
func testRoundTripSpecTable(t *testing.T, store Storage) {
	tb := createSpecTable(t, store, WithSyncCheckpoints())
	midnight := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	var written []map[string]any
	for c := 1; c <= 10; c++ {
		var rows []map[string]any
		for i := 0; i < 20; i++ {
			ts := midnight.Add(time.Duration(i-10) * time.Minute).Add(time.Duration(c) * time.Microsecond)
			rows = append(rows, specRow(c, i, ts))
		}
		res, err := tb.Append(t.Context(), rows, AppendOptions{
			SchemaEvolution: true,
			Txns:            []Txn{{AppID: "worker-topic-0", Version: int64(c * 100)}},
		})
		if err != nil {
			t.Fatalf("commit %d: %v", c, err)
		}
		if res.Version != int64(c) || res.Rows != 20 || res.Files != 2 {
			t.Fatalf("commit %d: got %+v", c, res)
		}
		written = append(written, rows...)
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version() != 10 {
		t.Fatalf("version %d, want 10", snap.Version())
	}
	if v, ok := snap.TxnVersion("worker-topic-0"); !ok || v != 1000 {
		t.Fatalf("txn version %d %v", v, ok)
	}
	names := []string{}
	for _, f := range snap.Schema().Fields {
		names = append(names, f.Name)
	}
	wantNames := "event_id,event_type,event_timestamp,processed_timestamp,task_id,assignment_id,project_id,task_status,task_name,assigned_to_user_id,assigned_by_user_id,task_created_at,task_completed_at,claimx_task_full,original_event,project_data,tracking_version,source,year,month,day"
	if got := strings.Join(names, ","); got != wantNames {
		t.Fatalf("columns\n got %s\nwant %s", got, wantNames)
	}
	got, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]map[string]any, len(written))
	for i, r := range written {
		if want[i], err = CoerceRow(snap.Schema(), r); err != nil {
			t.Fatal(err)
		}
	}
	sortRows(got)
	sortRows(want)
	if len(got) != len(want) {
		t.Fatalf("read %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("row %d:\n got %v\nwant %v", i, got[i], want[i])
		}
	}

	// A checkpoint exists at version 10 and replay from it matches.
	if _, err := store.Read(t.Context(), checkpointKey(10)); err != nil {
		t.Fatalf("checkpoint 10: %v", err)
	}
	fromCkpt, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := fromCkpt.Snapshot(t.Context())
	if s2.checkpointVersion != 10 {
		t.Fatalf("replay started at checkpoint %d, want 10", s2.checkpointVersion)
	}
	full, err := tb.replayFrom(t.Context(), mustList(t, tb), -1, 10)
	if err != nil {
		t.Fatal(err)
	}
	assertSameState(t, s2, full)
}

func mustList(t *testing.T, tb *Table) logListing {
	l, err := tb.listLog(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func assertSameState(t *testing.T, a, b *Snapshot) {
	t.Helper()
	if a.Version() != b.Version() {
		t.Fatalf("version %d vs %d", a.Version(), b.Version())
	}
	if !reflect.DeepEqual(a.Protocol(), b.Protocol()) {
		t.Fatalf("protocol %+v vs %+v", a.Protocol(), b.Protocol())
	}
	am, bm := a.Metadata(), b.Metadata()
	am.Schema, bm.Schema = nil, nil
	if !reflect.DeepEqual(am, bm) {
		t.Fatalf("metadata\n%+v\n%+v", am, bm)
	}
	if !reflect.DeepEqual(a.Txns(), b.Txns()) {
		t.Fatalf("txns %v vs %v", a.Txns(), b.Txns())
	}
	af, bf := a.Files(), b.Files()
	if len(af) != len(bf) {
		t.Fatalf("files %d vs %d", len(af), len(bf))
	}
	for i := range af {
		x, y := af[i], bf[i]
		x.DataChange, y.DataChange = false, false
		xj, _ := json.Marshal(x)
		yj, _ := json.Marshal(y)
		if string(xj) != string(yj) {
			t.Fatalf("file %d\n%+v\n%+v", i, x, y)
		}
	}
}

func sortRows(rows []map[string]any) {
	key := func(r map[string]any) string {
		b, err := json.Marshal(r)
		if err != nil { // map[any]any values
			return fmt.Sprint(r)
		}
		return string(b)
	}
	slices.SortFunc(rows, func(a, b map[string]any) int { return strings.Compare(key(a), key(b)) })
}
