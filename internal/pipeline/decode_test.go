package pipeline

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"testing"
)

// referenceDecode is encoding/json with UseNumber and the number rule of
// DecodeJSON: int64 when integral and in range, float64 otherwise.
func referenceDecode(b []byte) (map[string]any, bool) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := d.Token(); err == nil {
		return nil, false // data after the value
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	return m, fixRef(m)
}

// fixRef converts json.Number in place; false when a number does not fit a
// float64 (DecodeJSON refuses those).
func fixRef(v any) bool {
	conv := func(n json.Number) (any, bool) {
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return i, true
		}
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil && !math.IsInf(f, 0)
	}
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if n, ok := e.(json.Number); ok {
				c, ok := conv(n)
				if !ok {
					return false
				}
				t[k] = c
			} else if !fixRef(e) {
				return false
			}
		}
	case []any:
		for i, e := range t {
			if n, ok := e.(json.Number); ok {
				c, ok := conv(n)
				if !ok {
					return false
				}
				t[i] = c
			} else if !fixRef(e) {
				return false
			}
		}
	}
	return true
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]any
		err  bool
	}{
		{name: "event", in: `{"event_id":"e1","task_id":32513,"x":1.5,"big":12345678901234567890,"t":true,"n":null,"task":{"a":[1,"b",{}]}}`,
			want: map[string]any{"event_id": "e1", "task_id": int64(32513), "x": 1.5, "big": 12345678901234567890.0, "t": true, "n": nil, "task": map[string]any{"a": []any{int64(1), "b", map[string]any{}}}}},
		{name: "escapes", in: `{"k\u00e9":"a\"b\\c\n\ud83d\ude00"}`, want: map[string]any{"ké": "a\"b\\c\n😀"}},
		{name: "escapes and invalid UTF-8 of equal length", in: "{\"a\":\"a\\n\\n\xff\",\"b\":\"a\\n\\n\xff\"}", want: map[string]any{"a": "a\n\n\ufffd", "b": "a\n\n\ufffd"}},
		{name: "repeated values", in: `{"a":"open","b":"open","c":70012,"d":70012,"e":-5}`, want: map[string]any{"a": "open", "b": "open", "c": int64(70012), "d": int64(70012), "e": int64(-5)}},
		{name: "exponent is a float", in: `{"a":1e3,"b":-0}`, want: map[string]any{"a": 1000.0, "b": int64(0)}},
		{name: "array", in: `[1]`, err: true},
		{name: "truncated", in: `{"event_id": "trunc`, err: true},
		{name: "trailing data", in: `{} {}`, err: true},
		{name: "empty", in: ``, err: true},
		{name: "out of range", in: `{"a":1e400}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeJSON([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("got error %v, want error %v", err, tt.err)
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// FuzzDecodeJSON checks DecodeJSON against encoding/json: same value when
// both accept, and never a value where encoding/json refuses.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"e1","task_id":32513,"task":{"assigned_to_user_id":1001,"created_at":"2026-01-10T12:00:00Z"},"l":[1,2.5,"x",null,true]}`,
		`{"a":"\u00e9\ud83d\ude00\"","b":-12.5e-3}`,
		`{"a":`, `[]`, `{"a":1} x`, `{"a":"\xff"}`, `nul`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeJSON(b)
		want, ok := referenceDecode(b)
		if err == nil && !ok {
			if _, rerr := referenceDecode(b); !rerr {
				// encoding/json refused (or a number beyond float64).
				var v any
				if json.Unmarshal(b, &v) != nil {
					t.Fatalf("accepted %q, which encoding/json refuses", b)
				}
			}
			return
		}
		if err != nil || !ok {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, want %#v", b, got, want)
		}
	})
}

// BenchmarkDecode measures decoding one tracking message as the worker
// does (keys interned, the map sized for the fields the chain adds).
func BenchmarkDecode(b *testing.B) {
	msg := []byte(`{"trigger_name":"iTel Cabinet Task Tracking","event_id":"evt-000123-4","event_type":"CUSTOM_TASK_ASSIGNED","project_id":"5001","task_id":32513,"assignment_id":70012,"task_name":"iTel Cabinet Repair Form","task_status":"assigned","timestamp":"2026-01-10T12:00:00.001Z","task":{"assignment_id":70012,"task_id":32513,"project_id":"5001","status":"assigned","assigned_to_user_id":1042,"assigned_by_user_id":7,"created_at":"2026-01-09T08:00:00Z"},"project":{"project_id":"5001","name":"Project 5001","status":"open"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := decodeFields(msg, 24); err != nil {
			b.Fatal(err)
		}
	}
}
