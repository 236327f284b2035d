package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/config"
	"kpipe/internal/delta"
	"kpipe/internal/dlq"
	"kpipe/internal/sim"
)

var (
	flushRowIndex = regexp.MustCompile(`row \d+: `)
	tableStruct   = regexp.MustCompile(`table has struct<.*>, value`)
)

// rawFieldNames lists rawFields' fields, sorted.
func rawFieldNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for f := range m {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// canonicalType is t's string with struct fields in name order.
func canonicalType(t delta.DataType) string {
	switch t := t.(type) {
	case *delta.StructType:
		fs := make([]string, len(t.Fields))
		for i, f := range t.Fields {
			fs[i] = fmt.Sprintf("%s:%s:%v", f.Name, canonicalType(f.Type), f.Nullable)
		}
		sort.Strings(fs)
		return "struct<" + strings.Join(fs, ",") + ">"
	case *delta.ArrayType:
		return fmt.Sprintf("array<%s:%v>", canonicalType(t.ElementType), t.ContainsNull)
	case *delta.MapType:
		return fmt.Sprintf("map<%s,%s:%v>", canonicalType(t.KeyType), canonicalType(t.ValueType), t.ValueContainsNull)
	}
	return t.String()
}

// rawEquivPayloads are tracking payloads of the simulator's world followed
// by odd ones: new nested fields (schema evolution), arrays of structs,
// nulls, absent and empty objects, escaped and non-ASCII strings, a
// duplicate key, a member the transform sets already present, and type
// conflicts inside and of a whole struct column (rejected rows).
func rawEquivPayloads(t *testing.T, e *env, n int) [][]byte {
	t.Helper()
	base := e.entries()
	m := e.sim.Manifest()
	var out [][]byte
	maps := make([]map[string]any, 0, n)
	for i := 0; i < n; i++ {
		en := base[i%len(base)]
		en.EventID = fmt.Sprintf("%s-r%d", en.EventID, i)
		var p map[string]any
		if err := json.Unmarshal(trackingPayload(en, m.Assignments[en.AssignmentID][0].At), &p); err != nil {
			t.Fatal(err)
		}
		maps = append(maps, p)
	}
	task := func(i int) map[string]any { return maps[i]["task"].(map[string]any) }
	// Schema evolution: new fields inside task and project, nested structs
	// and arrays of structs, from some row on.
	task(10)["note"] = "first note"
	task(11)["form"] = map[string]any{"answers": map[string]any{"feet": 12.5, "type": "Base", "none": nil}, "photos": []any{map[string]any{"id": 1}, map[string]any{"id": 2, "caption": "é \"quoted\" \\ ✓"}}}
	task(12)["form"] = map[string]any{"photos": []any{}, "answers": map[string]any{}}
	task(13)["media"] = []any{}
	maps[14]["project"].(map[string]any)["address"] = map[string]any{"city": "Zürich", "zip": "8001"}
	maps[15]["task"] = nil
	delete(maps[16], "task")
	maps[17]["task"] = map[string]any{}
	maps[18]["project"] = nil
	task(19)["kpipe_fetched_at"] = "set in the message"
	task(20)["status"] = "with\nnewline\ttab"
	// Rejected: a struct column given a string, a nested long given a
	// string, a nested long given a float, a struct field given an array.
	maps[21]["task"] = "not an object"
	task(22)["assigned_to_user_id"] = "1001"
	task(23)["assigned_by_user_id"] = 7.5
	maps[24]["project"].(map[string]any)["name"] = []any{"x"}
	for _, p := range maps {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	// A duplicate key (the last wins, as in encoding/json) and escapes in
	// keys and values, written by hand.
	dup := strings.Replace(string(out[25]), `"task":{`, `"task":{"status":"shadowed","b\u00e9":"\ud83d\ude00",`, 1)
	out[25] = []byte(dup)
	return out
}

// runEquivWorker runs the tracking worker over payloads on a fresh broker
// and simulator (seed 11) into a fresh table until every message is a row
// or an error record, and returns the rows by event_id, the error records
// by offset and the table's schema.
func runEquivWorker(t *testing.T, payloads func(*env) [][]byte, opts ...WorkerOption) (map[string]map[string]any, map[string]string, *delta.StructType, *Worker) {
	t.Helper()
	e := newEnv(t, sim.Options{Seed: 11, Projects: 60})
	ps := payloads(e)
	recs := make([]*kgo.Record, len(ps))
	for i, p := range ps {
		// One key, so one partition: which rows a row follows decides
		// what evolution has added when it is written (an untypeable
		// value of a field not yet in the schema is stored as null).
		recs[i] = &kgo.Record{Key: []byte("one"), Value: p}
	}
	ctx := t.Context()
	e.produce(ctx, recs...)
	dir := t.TempDir()
	s := deltaSinkTweaked(t, dir, func(c *DeltaWriterConfig) { c.FlushRows = 40 })
	w := e.newWorker(t, s, opts...)
	stop := runWorker(t, ctx, w)
	var rows []map[string]any
	var errs []*kgo.Record
	waitFor(t, 90*time.Second, "every message a row or an error record", func() bool {
		rows = s.rows()
		errs = e.readTopic(ctx, errorTopic, -1, 100*time.Millisecond)
		return len(rows)+len(errs) >= len(ps)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	byID := map[string]map[string]any{}
	for _, r := range rows {
		delete(r, "processed_timestamp") // the processing clock
		byID[r["event_id"].(string)] = r
	}
	byOffset := map[string]string{}
	for _, r := range errs {
		var rec dlq.Record
		if err := json.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		// Which rows share a flush is timing: the row's index in it, and
		// the table's type at that moment, are left out.
		msg := flushRowIndex.ReplaceAllString(rec.Message, "")
		msg = tableStruct.ReplaceAllString(msg, "table has struct<…>, value")
		byOffset[fmt.Sprintf("%d/%d", rec.Partition, rec.Offset)] = rec.Class + " " + rec.Handler + ": " + msg
	}
	store, err := delta.OpenLocation(filepath.Join(dir, "delta", "itel_cabinet_task_tracking"))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tbl.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return byID, byOffset, snap.Schema(), w
}

// TestRawFieldsRowsEqualEager runs the same messages through the worker
// twice: decoding every field into maps, and leaving the objects it only
// passes along raw (task and project, shredded into their struct columns
// from the bytes). Every row, every error record and the evolved schema
// must be the same.
func TestRawFieldsRowsEqualEager(t *testing.T) {
	const n = 120
	payloads := func(e *env) [][]byte { return rawEquivPayloads(t, e, n) }
	eagerRows, eagerErrs, eagerSchema, ew := runEquivWorker(t, payloads, WithEagerDecode())
	rawRows, rawErrs, rawSchema, rw := runEquivWorker(t, payloads)
	if ew.raw != nil {
		t.Fatalf("WithEagerDecode left fields raw: %v", ew.raw)
	}
	if !rw.raw["task"] || !rw.raw["project"] {
		t.Fatalf("the worker leaves %v raw; want task and project (the fast path is not exercised)", rawFieldNames(rw.raw))
	}
	if len(eagerErrs) < 4 {
		t.Fatalf("%d error records; the rejected payloads should give at least 4: %v", len(eagerErrs), eagerErrs)
	}
	if len(eagerRows)+len(eagerErrs) != n {
		t.Fatalf("eager: %d rows and %d error records for %d messages", len(eagerRows), len(eagerErrs), n)
	}
	if !reflect.DeepEqual(eagerErrs, rawErrs) {
		t.Errorf("error records differ: %d eager, %d raw:\neager %.2000v\nraw   %.2000v", len(eagerErrs), len(rawErrs), eagerErrs, rawErrs)
	}
	// Evolution appends fields in the order rows bring them, and which
	// rows share a flush is timing: the fields are compared in name order.
	if a, b := canonicalType(eagerSchema), canonicalType(rawSchema); a != b {
		t.Errorf("schemas differ:\neager %s\nraw   %s", a, b)
	}
	if !strings.Contains(eagerSchema.String(), "caption") {
		t.Errorf("the schema did not evolve with the nested fields: %s", eagerSchema)
	}
	ids := make([]string, 0, len(eagerRows))
	for id := range eagerRows {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(rawRows) != len(eagerRows) {
		t.Errorf("%d rows raw, %d eager", len(rawRows), len(eagerRows))
	}
	differ := 0
	for _, id := range ids {
		if !reflect.DeepEqual(eagerRows[id], rawRows[id]) {
			if differ++; differ <= 3 {
				t.Errorf("row %s differs:\neager %v\nraw   %v", id, eagerRows[id], rawRows[id])
			}
		}
	}
	if differ > 0 {
		t.Errorf("%d of %d rows differ", differ, len(ids))
	}
}

func TestRawFields(t *testing.T) {
	tr := NewTransform(&TransformConfig{Mappings: map[string]string{
		"task": "task", "project": "project", "copy": "blob", "blob2": "blob2",
		"task.fetched": "fetched", "deep.a.b": "x", "sub": "outer.inner",
	}}, nil)
	v, err := NewValidation(&ValidationConfig{RequiredFields: []string{"event_id", "copy.id"}})
	if err != nil {
		t.Fatal(err)
	}
	dw := newDeltaWriter(&DeltaWriterConfig{TableName: "t", ColumnMapping: map[string]string{"a": "task", "b": "project", "c": "blob2", "d": "status"}, FlushRows: 1, FlushBytes: 1, FlushInterval: 1}, newMemTable(), Deps{})
	c, err := NewChain([]string{"transform", "validation", "delta_writer"}, []Handler{tr, v, dw}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	got := rawFieldNames(rawFields(c, &config.Worker{SuccessRecord: config.SuccessRecord{Fields: []string{"blob2"}}, StatusField: "status"}))
	// copy is read inside (copy.id), so blob, copied into it, is decoded;
	// blob2 is a success record field, status the status field; outer and
	// deep are read inside. fetched is whole (copied into task).
	if want := []string{"fetched", "project", "task"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("rawFields = %v, want %v", got, want)
	}
	skip := "event_type == 'x'"
	v2, err := NewValidation(&ValidationConfig{SkipIf: &skip})
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := NewChain([]string{"transform", "validation"}, []Handler{tr, v2}, Deps{})
	if m := rawFields(c2, &config.Worker{}); m != nil {
		t.Fatalf("skip_if may read any field, yet rawFields = %v", m)
	}
}
