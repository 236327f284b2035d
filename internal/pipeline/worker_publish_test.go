package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/config"
)

// The appended success record decodes to what encoding/json would give:
// the fixed keys, and the configured fields (null when absent).
func TestSuccessRecordEncoding(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	shipped := []string{"event_id", "task_id", "assignment_id", "task_status"}
	tests := []struct {
		name    string
		fields  []string // success_record.fields
		event   map[string]any
		table   string
		version int64
	}{
		{name: "row", fields: shipped, event: map[string]any{"event_id": "e-1", "task_id": int64(32513), "assignment_id": int64(7), "task_status": "in_progress", "other": 1}, table: "t", version: 3},
		{name: "nulls and odd values", fields: shipped, event: map[string]any{"event_id": "é\n<>", "task_id": 1.5, "assignment_id": nil, "task_status": nil}, version: -1},
		{name: "object value, absent field", fields: shipped, event: map[string]any{"event_id": map[string]any{"a": true}, "task_id": "x", "assignment_id": false}},
		{name: "nothing configured", event: map[string]any{"event_id": "e-1", "task_id": int64(32513)}, table: "t", version: 4},
		{name: "dotted path and odd name", fields: []string{"task.status", "w\"x"}, event: map[string]any{"task": map[string]any{"status": "done"}, "w\"x": []any{int64(1)}}, version: 1},
		{name: "a top-level key that is the whole path wins", fields: []string{"task.status", "task.assignee.id"}, event: map[string]any{"task.status": nil, "task": map[string]any{"status": "done", "assignee": map[string]any{"id": int64(5)}}}},
		{name: "paths that miss", fields: []string{"task.status", "gone.x", "task.status.deeper", "a.b.c"}, event: map[string]any{"task": map[string]any{"status": "done"}, "a": map[string]any{"b": "not an object"}}},
	}
	for _, tt := range tests {
		// Once as the chain leaves an event, once as the Delta writer
		// buffers it: Fields let go of, the retained fields kept.
		for _, trimmed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/trimmed=%v", tt.name, trimmed), func(t *testing.T) {
				cfg := &config.Worker{Name: "w\"1", SuccessTopic: "s", SuccessRecord: config.SuccessRecord{Fields: tt.fields}}
				w := &Worker{cfg: cfg}
				retained := retainedFields(cfg)
				w.pub = &publisher{name: cfg.Name, successTopic: cfg.SuccessTopic, fields: newSuccessFields(cfg.SuccessRecord.Fields, retained)}
				ev := &Event{Fields: tt.event, Topic: "in", Partition: 2, Offset: 99, Key: []byte("k")}
				if trimmed {
					ev.kept = keepFields(make([]any, len(retained)), ev.Fields, retained)
					ev.Fields = nil
				}
				rec := w.pub.successRecord(ev, tt.table, tt.version, now)
				exp := map[string]any{"worker": cfg.Name, "table_version": tt.version, "topic": "in", "partition": 2, "offset": 99, "processed_at": now.UTC()}
				if tt.table != "" {
					exp["table"] = tt.table
				}
				for _, f := range tt.fields {
					v, _ := getPath(tt.event, f)
					exp[f] = v
				}
				var got, want any
				if err := json.Unmarshal(rec.Value, &got); err != nil {
					t.Fatalf("%s: %v", rec.Value, err)
				}
				_ = json.Unmarshal(mustMarshal(exp), &want)
				if gb, wb := mustMarshal(got), mustMarshal(want); string(gb) != string(wb) {
					t.Fatalf("got %s, want %s", rec.Value, wb)
				}
				// The configured fields come right after worker, in order.
				wantPrefix := `{"worker":"w\"1"`
				for _, f := range tt.fields {
					wantPrefix += "," + string(marshalNoHTML(f)) + ":"
					v, _ := getPath(tt.event, f)
					wantPrefix += string(marshalNoHTML(v))
				}
				if !strings.HasPrefix(string(rec.Value), wantPrefix) {
					t.Fatalf("got %s, want it to start with %s", rec.Value, wantPrefix)
				}
				var sr SuccessRecord
				if err := json.Unmarshal(rec.Value, &sr); err != nil {
					t.Fatal(err)
				}
				if len(sr.Fields) != len(tt.fields) || sr.Worker != cfg.Name || sr.Offset != 99 || !sr.ProcessedAt.Equal(now) {
					t.Fatalf("decoded %+v", sr)
				}
				// Keyed by the source message, so that consumers deduplicate
				// what a restart published again.
				if rec.Topic != "s" || string(rec.Key) != "in/2/99" {
					t.Fatalf("record %+v", (*kgo.Record)(rec))
				}
			})
		}
	}
}

// marshalNoHTML is json.Marshal without HTML escaping, as success records
// are written.
func marshalNoHTML(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func mustMarshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
