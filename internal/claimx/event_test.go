package claimx

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"kpipe/internal/httpconn"
)

const sampleEvent = `{"event_id":"e1","event_type":"CUSTOM_TASK_ASSIGNED","project_id":"5000001","ingested_at":"2026-01-05T08:00:00.123Z","task_assignment_id":1000008,"media_id":null,"video_collaboration_id":null,"master_file_name":null,"raw_data":{"customTaskId":32513,"nested":{"a":[1,2.5]}},"extra":"kept"}`

func TestParseEvent(t *testing.T) {
	e, err := ParseEvent([]byte(sampleEvent))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 1, 5, 8, 0, 0, 123e6, time.UTC)
	if e.EventID != "e1" || !e.IngestedAt.Equal(want) || e.TaskAssignmentID != SomeID(1000008) || e.MediaID.Valid || !e.IsTaskEvent() {
		t.Fatalf("got %+v", e)
	}
	raw, err := e.Raw()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := raw.Int64("customTaskId"); v != 32513 {
		t.Fatalf("raw customTaskId %v", v)
	}
	if v, ok := raw.Get("nested.a"); !ok || v.([]any)[1] != 2.5 {
		t.Fatalf("raw nested.a %v", v)
	}
	// Encoding round trip keeps the layout of the topic.
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := ParseEvent(b)
	if err != nil || e2.EventID != e.EventID || !e2.IngestedAt.Equal(e.IngestedAt) || string(e2.RawData) != string(e.RawData) {
		t.Fatalf("round trip: %v %s", err, b)
	}
	if !strings.Contains(string(b), `"media_id":null`) || !strings.Contains(string(b), `"ingested_at":"2026-01-05T08:00:00.123Z"`) {
		t.Fatalf("encoding: %s", b)
	}
	// A numeric project_id is accepted.
	e4, err := ParseEvent([]byte(`{"event_id":"x","event_type":"PROJECT_CREATED","project_id":5000001}`))
	if err != nil || e4.ProjectID != "5000001" {
		t.Fatalf("numeric project_id: %+v %v", e4, err)
	}
	if _, err := ParseEvent([]byte(`{"event_id":"x","event_type":"PROJECT_CREATED","project_id":{}}`)); err == nil {
		t.Fatal("object project_id accepted")
	}
	// Ids as numeric strings are accepted.
	e3, err := ParseEvent([]byte(`{"event_id":"x","event_type":"PROJECT_FILE_ADDED","media_id":"77"}`))
	if err != nil || e3.MediaID != SomeID(77) || e3.IsTaskEvent() {
		t.Fatalf("string id: %+v %v", e3, err)
	}
}

func TestParseEventErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"", ErrNotJSON},
		{"hello", ErrNotJSON},
		{`[1,2]`, ErrNotJSON},
		{`{"event_id":"a",`, ErrNotJSON},
		{`{"event_type":"X"}`, ErrMissingEventID},
		{`{"event_id":"a"}`, ErrMissingEventType},
		{`{"event_id":"a","event_type":""}`, ErrMissingEventType},
		{`{"event_id":"a","event_type":"X","task_assignment_id":"abc"}`, nil},
		{`{"event_id":"a","event_type":"X","raw_data":[1]}`, nil},
		{`{"event_id":"a","event_type":"X","ingested_at":"yesterday"}`, nil},
	}
	for _, tt := range tests {
		_, err := ParseEvent([]byte(tt.in))
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%q: got %v, want %v", tt.in, err, tt.want)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(sampleEvent))
	f.Add([]byte(sampleEvent[:40]))
	f.Add([]byte(`{"event_id":"a","event_type":"b","task_assignment_id":"12"}`))
	f.Add([]byte("\x00\xff garbage"))
	f.Add([]byte(`{"event_id":"\u2028","event_type":"\ud800","master_file_name":"a\"b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEvent(b)
		if err != nil {
			return
		}
		if e.EventID == "" || e.EventType == "" {
			t.Fatalf("accepted an event without id or type: %q", b)
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		e2, err := ParseEvent(out)
		if err != nil {
			t.Fatalf("re-parse %q: %v", out, err)
		}
		if e2.EventID != e.EventID || e2.EventType != e.EventType || e2.TaskAssignmentID != e.TaskAssignmentID || !e2.IngestedAt.Equal(e.IngestedAt) {
			t.Fatalf("round trip changed the event: %+v vs %+v", e, e2)
		}
	})
}

func TestRowAccessors(t *testing.T) {
	r, err := DecodeRow([]byte(`{"id":9007199254740993,"f":2.0,"s":"12","t":"2026-01-05T08:00:00Z","null":null,"m":{"x":{"y":"z"}},"neg":-1.5}`))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := r.Int64("id"); !ok || v != 9007199254740993 {
		t.Fatalf("id %v", v)
	}
	if v, ok := r.Int64("f"); !ok || v != 2 {
		t.Fatalf("f %v %v", v, ok)
	}
	if v, ok := r.Int64("s"); !ok || v != 12 {
		t.Fatalf("s %v", v)
	}
	if _, ok := r.Int64("neg"); ok {
		t.Fatal("neg is not an integer")
	}
	if v, ok := r.String("id"); !ok || v != "9007199254740993" {
		t.Fatalf("String(id) %v", v)
	}
	if _, ok := r.String("null"); ok {
		t.Fatal("null is not a string")
	}
	if v, ok := r.Time("t"); !ok || !v.Equal(time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("t %v", v)
	}
	if v, ok := r.String("m.x.y"); !ok || v != "z" {
		t.Fatalf("m.x.y %v", v)
	}
	if m, ok := r.Map("m.x"); !ok || m["y"] != "z" {
		t.Fatalf("Map %v", m)
	}
	if _, ok := r.Get("m.missing.y"); ok {
		t.Fatal("missing path found")
	}
	for _, bad := range []string{`[1]`, `{"a":`, `{} {}`, ``} {
		if _, err := DecodeRow([]byte(bad)); !errors.Is(err, httpconn.ErrMalformedBody) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
