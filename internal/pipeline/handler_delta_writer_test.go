package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kpipe/internal/config"
	"kpipe/internal/delta"
	"kpipe/internal/dlq"
)

// newTestDeltaWriter opens a delta_writer on the tracking table under dir,
// with cfg's column mapping and settings.
func newTestDeltaWriter(t *testing.T, dir string, cfg *DeltaWriterConfig) *DeltaWriter {
	t.Helper()
	deps := Deps{TableDefs: tableDefs, WorkerName: workerName}.withDefaults()
	tbl, err := openDeltaTable(filepath.Join(dir, "delta", cfg.TableName), cfg.TableName, deps)
	if err != nil {
		t.Fatal(err)
	}
	w := newDeltaWriter(cfg, tbl, deps)
	t.Cleanup(func() { _ = w.Close(t.Context()) })
	return w
}

// trackingWriterConfig maps the tracking table's NOT NULL columns and
// extra, from fields of the same names.
func trackingWriterConfig(extra ...string) *DeltaWriterConfig {
	cfg := deltaWriterDefaults()
	cfg.TableName = "itel_cabinet_task_tracking"
	cfg.ColumnMapping = map[string]string{}
	for _, c := range append([]string{"event_id", "event_type", "event_timestamp", "processed_timestamp", "task_id", "project_id", "task_status"}, extra...) {
		cfg.ColumnMapping[c] = c
	}
	return cfg
}

func trackingEvent(offset int64, extra map[string]any) *Event {
	f := map[string]any{
		"event_id": fmt.Sprint("e", offset), "event_type": "CUSTOM_TASK_ASSIGNED",
		"event_timestamp": "2026-01-10T12:00:00Z", "processed_timestamp": "2026-01-10T12:00:01Z",
		"task_id": int64(32513), "project_id": "p1", "task_status": "assigned",
	}
	for k, v := range extra {
		f[k] = v
	}
	return &Event{Fields: f, Raw: []byte("{}"), Topic: inputTopic, Offset: offset}
}

// A value the table refused for a column it did not have is accepted once
// another writer has added the column and this writer has read the
// snapshot with it (here: the commit of the refused event's offset), with
// no restart. Before, the schema read at start was kept for the writer's
// whole life.
func TestDeltaWriterSchemaRefreshedAfterOtherWriterEvolved(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	other, _ := createTable(t, dir, nil)
	w := newTestDeltaWriter(t, dir, trackingWriterConfig("note"))

	res, err := w.HandleBatch(ctx, []*Event{trackingEvent(0, map[string]any{"note": "first"})})
	if err != nil {
		t.Fatal(err)
	}
	var he *HandlerError
	if !errors.As(res[0].Err, &he) || he.Class != dlq.ClassSchemaConflict {
		t.Fatalf("before the column exists: %v, want a schema_conflict", res[0].Err)
	}

	// Another writer evolves the table: a new top-level column note.
	row := map[string]any{
		"event_id": "x", "event_type": "CUSTOM_TASK_ASSIGNED", "event_timestamp": time.Now(),
		"processed_timestamp": time.Now(), "task_id": int64(32513), "project_id": "p1",
		"task_status": "assigned", "year": int64(2026), "month": int64(1), "day": int64(10), "note": "other",
	}
	cr, err := other.Append(ctx, []map[string]any{row}, delta.AppendOptions{SchemaEvolution: true})
	if err != nil || !cr.SchemaChanged {
		t.Fatalf("other writer's Append: %+v, %v; want a schema change", cr, err)
	}

	// The refused event's offset is committed (no rows): the writer reads
	// the table's snapshot, with the new column.
	if _, err := w.Commit(ctx, w.Take(), []Mark{{Topic: inputTopic, Offset: 0}}); err != nil {
		t.Fatal(err)
	}
	res, err = w.HandleBatch(ctx, []*Event{trackingEvent(1, map[string]any{"note": "second"})})
	if err != nil || res[0].Err != nil {
		t.Fatalf("after the other writer evolved the table: %v, %v; want the row accepted", err, res[0].Err)
	}
	fr, err := w.Flush(ctx, []Mark{{Topic: inputTopic, Offset: 1}})
	if err != nil || len(fr.Written) != 1 {
		t.Fatalf("Flush: %+v, %v", fr, err)
	}
	found := false
	for _, r := range readDelta(t, filepath.Join(dir, "delta", "itel_cabinet_task_tracking")) {
		found = found || r["note"] == "second"
	}
	if !found {
		t.Fatal("the accepted row is not in the table")
	}
}

// The writer's own schema evolution is in the schema it checks the next
// batch against.
func TestDeltaWriterSchemaRefreshedAfterOwnEvolution(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	cfg := trackingWriterConfig("claimx_task_full")
	cfg.SchemaEvolution = true
	w := newTestDeltaWriter(t, dir, cfg)
	ev := trackingEvent(0, map[string]any{"claimx_task_full": map[string]any{"id": int64(7)}})
	if res, err := w.HandleBatch(ctx, []*Event{ev}); err != nil || res[0].Err != nil {
		t.Fatalf("HandleBatch: %v, %v", err, res[0].Err)
	}
	if w.schema.Field("claimx_task_full") != nil {
		t.Fatal("the inferred column is in the schema before its first value")
	}
	if _, err := w.Flush(ctx, []Mark{{Topic: inputTopic, Offset: 0}}); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	s := w.schema
	w.mu.Unlock()
	if s.Field("claimx_task_full") == nil {
		t.Fatal("the column this writer's commit added is not in its schema")
	}
	// An object is now checked against the evolved struct type, a string
	// refused as not an object.
	res, err := w.HandleBatch(ctx, []*Event{trackingEvent(1, map[string]any{"claimx_task_full": "text"})})
	if err != nil || res[0].Err == nil {
		t.Fatalf("a string for the evolved struct column: %v, %v; want a schema_conflict", err, res[0].Err)
	}
}

// partition_by decides which partition columns the writer fills and from
// what; without it, year, month and day come from partition_timestamp
// (event_timestamp), as before it existed.
func TestDeltaWriterPartitionBy(t *testing.T) {
	ts := "2026-03-04T23:30:00-02:00" // 2026-03-05 01:30 UTC
	for _, tc := range []struct {
		name string
		by   []PartitionSpec
		want map[string]any
	}{
		{"default", nil, map[string]any{"year": int32(2026), "month": int32(3), "day": int32(5)}},
		{"declared", []PartitionSpec{
			{Column: "year", From: "event_timestamp", Part: "year"},
			{Column: "month", From: "event_timestamp", Part: "month"},
			{Column: "day", From: "event_timestamp", Part: "day"},
		}, map[string]any{"year": int32(2026), "month": int32(3), "day": int32(5)}},
		{"other columns", []PartitionSpec{
			{Column: "year", From: "processed_timestamp", Part: "year"},
			{Column: "day", From: "event_timestamp", Part: "hour"},
		}, map[string]any{"year": int32(2027), "month": nil, "day": int32(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := trackingWriterConfig()
			cfg.PartitionBy = tc.by
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			w := newDeltaWriter(cfg, newMemTable(), Deps{})
			schema, err := w.loadSchema(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			ev := trackingEvent(0, map[string]any{"event_timestamp": ts, "processed_timestamp": "2027-01-01T00:00:00Z"})
			for _, memo := range []*rowMemo{nil, newRowMemo(len(w.columns), len(w.partitions))} {
				for range 2 { // the second time from the memo
					vals := make([]any, len(w.rowCols))
					if err := w.row(w.planFor(schema), ev, memo, vals); err != nil {
						t.Fatal(err)
					}
					row := w.rowMap(vals)
					for col, want := range tc.want {
						if got := row[col]; got != want {
							t.Fatalf("%s = %#v, want %#v", col, got, want)
						}
					}
				}
			}
		})
	}
}

func TestDeltaWriterPartitionByValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		by   []PartitionSpec
		ts   string
		want string
	}{
		{"unknown part", []PartitionSpec{{Column: "year", From: "event_timestamp", Part: "week"}}, "", `partition_by[0]: part "week": want year, month, day or hour`},
		{"missing", []PartitionSpec{{Column: "year", Part: "year"}}, "", "partition_by[0]: column, from and part are required"},
		{"from unmapped", []PartitionSpec{{Column: "year", From: "ts", Part: "year"}}, "", `partition_by[0]: from "ts" is not a column of column_mapping`},
		{"mapped too", []PartitionSpec{{Column: "task_status", From: "event_timestamp", Part: "year"}}, "", `column "task_status" is also in column_mapping`},
		{"twice", []PartitionSpec{{Column: "year", From: "event_timestamp", Part: "year"}, {Column: "year", From: "event_timestamp", Part: "month"}}, "", `partition_by[1]: column "year" is derived twice`},
		{"both forms", []PartitionSpec{{Column: "year", From: "event_timestamp", Part: "year"}}, "event_timestamp", "partition_timestamp \"event_timestamp\": not used with partition_by"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := trackingWriterConfig()
			cfg.PartitionBy, cfg.PartitionTimestamp = tc.by, tc.ts
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// The shipped workers.yaml declares the partitions; a misspelt key in
// partition_by is refused with its file, line and column, as every other
// unknown field of a handler block.
func TestDeltaWriterPartitionByDecoding(t *testing.T) {
	env := config.WithEnv(func(k string) (string, bool) {
		return map[string]string{"CLAIMX_API_BASE_URL": "http://x", "CLAIMX_API_TOKEN": "t"}[k], true
	})
	check := config.WithHandlers(DefaultRegistry())
	cfg, err := config.Load("../../config", env, check)
	if err != nil {
		t.Fatal(err)
	}
	var dw *config.HandlerSpec
	for _, w := range cfg.Workers {
		for _, h := range w.EnrichmentHandlers {
			if h.Type == TypeDeltaWriter {
				dw = h
			}
		}
	}
	if dw == nil {
		t.Fatal("no delta_writer in the shipped config")
	}
	c := deltaWriterDefaults()
	if err := dw.Decode(c); err != nil {
		t.Fatal(err)
	}
	want := []PartitionSpec{{"year", "event_timestamp", "year"}, {"month", "event_timestamp", "month"}, {"day", "event_timestamp", "day"}}
	if !slices.Equal(c.PartitionBy, want) {
		t.Fatalf("shipped partition_by %v, want %v", c.PartitionBy, want)
	}

	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../config")); err != nil {
		t.Fatal(err)
	}
	wf := filepath.Join(dir, "plugins", "itel_cabinet_api", "workers.yaml")
	data, err := os.ReadFile(wf)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	line := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "part: month}") }) + 1
	bad := strings.Replace(string(data), "part: month}", "prat: month}", 1)
	if err := os.WriteFile(wf, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = config.Load(dir, env, check)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("workers.yaml:%d:", line)) || !strings.Contains(err.Error(), `unknown field "prat"`) {
		t.Fatalf("Load: %v, want workers.yaml:%d naming the unknown field prat", err, line)
	}
}
