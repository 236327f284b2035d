package pipeline

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/config"
)

// The appended success record decodes to what encoding/json would give.
func TestSuccessRecordEncoding(t *testing.T) {
	w := &Worker{cfg: &config.Worker{Name: "w\"1", SuccessTopic: "s"}}
	w.pub = &publisher{name: w.cfg.Name, successTopic: w.cfg.SuccessTopic}
	now := time.Date(2026, 1, 10, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	tests := []struct {
		name    string
		fields  map[string]any
		table   string
		version int64
	}{
		{name: "row", fields: map[string]any{"event_id": "e-1", "task_id": int64(32513), "assignment_id": int64(7), "task_status": "in_progress"}, table: "t", version: 3},
		{name: "nulls and odd values", fields: map[string]any{"event_id": "é\n<>", "task_id": 1.5, "assignment_id": nil, "task_status": nil}, version: -1},
		{name: "object value", fields: map[string]any{"event_id": map[string]any{"a": true}, "task_id": "x", "assignment_id": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &Event{Fields: tt.fields, Topic: "in", Partition: 2, Offset: 99, Key: []byte("k")}
			rec := w.pub.successRecord(ev, tt.table, tt.version, now)
			want, _ := json.Marshal(SuccessRecord{
				Worker: w.cfg.Name, EventID: tt.fields["event_id"], TaskID: tt.fields["task_id"], AssignmentID: tt.fields["assignment_id"],
				TaskStatus: tt.fields["task_status"], Table: tt.table, TableVersion: tt.version, Topic: "in", Partition: 2, Offset: 99, ProcessedAt: now.UTC(),
			})
			var got, exp any
			if err := json.Unmarshal(rec.Value, &got); err != nil {
				t.Fatalf("%s: %v", rec.Value, err)
			}
			_ = json.Unmarshal(want, &exp)
			if gb, _ := json.Marshal(got); string(gb) != string(mustMarshal(exp)) {
				t.Fatalf("got %s, want %s", rec.Value, want)
			}
			// Keyed by the source message, so that consumers deduplicate
			// what a restart published again.
			if rec.Topic != "s" || string(rec.Key) != "in/2/99" {
				t.Fatalf("record %+v", (*kgo.Record)(rec))
			}
		})
	}
}

func mustMarshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
