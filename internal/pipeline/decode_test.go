package pipeline

import (
	"testing"

	"kpipe/internal/jsonx"
)

// BenchmarkDecode measures decoding one tracking message as the worker
// does (keys interned, the map sized for the fields the chain adds). The
// decoder's own tests are in jsonx.
func BenchmarkDecode(b *testing.B) {
	msg := []byte(`{"trigger_name":"iTel Cabinet Task Tracking","event_id":"evt-000123-4","event_type":"CUSTOM_TASK_ASSIGNED","project_id":"5001","task_id":32513,"assignment_id":70012,"task_name":"iTel Cabinet Repair Form","task_status":"assigned","timestamp":"2026-01-10T12:00:00.001Z","task":{"assignment_id":70012,"task_id":32513,"project_id":"5001","status":"assigned","assigned_to_user_id":1042,"assigned_by_user_id":7,"created_at":"2026-01-09T08:00:00Z"},"project":{"project_id":"5001","name":"Project 5001","status":"open"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := jsonx.DecodeObject(msg, 24); err != nil {
			b.Fatal(err)
		}
	}
}
