package claimx

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// errRefRefused is refDecode's answer for input DecodeObject must refuse.
var errRefRefused = errors.New("refused by the reference")

// refDecode is the encoding/json reference DecodeObject must match:
// UseNumber, then int64 when integral and in range, float64 otherwise. It
// refuses what encoding/json refuses, anything after the value, a value that
// is not an object and a number beyond float64.
func refDecode(b []byte) (map[string]any, error) {
	if !json.Valid(b) { // one value and nothing but whitespace after it
		return nil, errRefRefused
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errRefRefused
	}
	if !refConvert(m) {
		return nil, errRefRefused
	}
	return m, nil
}

// refConvert converts json.Number in place; false when a number does not
// fit a float64.
func refConvert(v any) bool {
	conv := func(n json.Number) (any, bool) {
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return i, true
		}
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil
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
			} else if !refConvert(e) {
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
			} else if !refConvert(e) {
				return false
			}
		}
	}
	return true
}

func TestDecodeObject(t *testing.T) {
	nest := func(n int) string { return `{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}` }
	tests := []struct {
		name string
		in   string
		want map[string]any
		err  bool
	}{
		{name: "event", in: `{"event_id":"e1","task_id":32513,"x":1.5,"big":12345678901234567890,"t":true,"n":null,"task":{"a":[1,"b",{}]}}`,
			want: map[string]any{"event_id": "e1", "task_id": int64(32513), "x": 1.5, "big": 12345678901234567890.0, "t": true, "n": nil, "task": map[string]any{"a": []any{int64(1), "b", map[string]any{}}}}},
		{name: "int64 bounds", in: `{"a":9223372036854775807,"b":-9223372036854775808,"c":9223372036854775808}`,
			want: map[string]any{"a": int64(9223372036854775807), "b": int64(-9223372036854775808), "c": 9223372036854775808.0}},
		{name: "escapes", in: `{"k\u00e9":"a\"b\\c\n\ud83d\ude00"}`, want: map[string]any{"ké": "a\"b\\c\n😀"}},
		{name: "lone surrogate", in: `{"a":"\ud800x"}`, want: map[string]any{"a": "\ufffdx"}},
		{name: "escapes and invalid UTF-8 of equal length", in: "{\"a\":\"a\\n\\n\xff\",\"b\":\"a\\n\\n\xff\"}", want: map[string]any{"a": "a\n\n\ufffd", "b": "a\n\n\ufffd"}},
		{name: "repeated values", in: `{"a":"open","b":"open","c":70012,"d":70012,"e":-5}`, want: map[string]any{"a": "open", "b": "open", "c": int64(70012), "d": int64(70012), "e": int64(-5)}},
		{name: "exponent is a float", in: `{"a":1e3,"b":-0}`, want: map[string]any{"a": 1000.0, "b": int64(0)}},
		{name: "duplicate key, last wins", in: ` {"a":1,"a":2} `, want: map[string]any{"a": int64(2)}},
		{name: "max depth", in: nest(10000), want: map[string]any{"a": nestedArrays(9999)}},
		{name: "beyond max depth", in: nest(10001), err: true},
		{name: "array", in: `[1]`, err: true},
		{name: "string", in: `"x"`, err: true},
		{name: "truncated", in: `{"event_id": "trunc`, err: true},
		{name: "trailing data", in: `{} {}`, err: true},
		{name: "empty", in: ``, err: true},
		{name: "out of range", in: `{"a":1e400}`, err: true},
		{name: "bad escape", in: `{"a":"\x"}`, err: true},
		{name: "bad unicode escape", in: `{"a":"\u12g4"}`, err: true},
		{name: "control character", in: "{\"a\":\"\x01\"}", err: true},
		{name: "leading zero", in: `{"a":01}`, err: true},
		{name: "trailing comma", in: `{"a":[1,]}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeObject([]byte(tt.in), 0)
			if (err != nil) != tt.err {
				t.Fatalf("got error %v, want error %v", err, tt.err)
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
			if _, rerr := refDecode([]byte(tt.in)); (rerr != nil) != tt.err {
				t.Fatalf("reference error %v, want error %v", rerr, tt.err)
			}
			if _, err := DecodeRow([]byte(tt.in)); tt.err && !errors.Is(err, ErrMalformedBody) {
				t.Fatalf("DecodeRow: got %v, want %v", err, ErrMalformedBody)
			}
		})
	}
}

func nestedArrays(n int) any {
	v := []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

// FuzzDecodeJSON checks DecodeObject and DecodeRow against encoding/json:
// each accepts exactly what the reference accepts, with the same value, and
// again the same value on a second decode (the boxed values it shares).
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		sampleEvent,
		`{"event_id":"e1","task_id":32513,"task":{"assigned_to_user_id":1001,"created_at":"2026-01-10T12:00:00Z"},"l":[1,2.5,"x",null,true]}`,
		`{"a":[1,-2,3.5,1e3,-0,12345678901234567890,9223372036854775807,-9223372036854775808]}`,
		`{"a":"\u00e9\ud83d\ude00\ud800x\"\\\/\b\f\n\r\t","b":-12.5e-3}`,
		`{"a":[true,false,null,{}]}`, `{"a":1,"a":2}`, "{\"\xff\xfe\":\"\xff\"}", `{"a" 1}`, `{"a":[1,]}`,
		`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":1e400}`, `{} }`, ` {"k":"v"} `, `{"a":1} x`,
		`{"a":`, `[]`, `"x"`, `nul`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeObject(b, 0)
		want, werr := refDecode(b)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: err %v, reference err %v", b, err, werr)
		}
		row, rerr := DecodeRow(b)
		if (rerr == nil) != (err == nil) || (rerr != nil && !errors.Is(rerr, ErrMalformedBody)) {
			t.Fatalf("%q: DecodeRow err %v, DecodeObject err %v", b, rerr, err)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, want %#v", b, got, want)
		}
		if !reflect.DeepEqual(map[string]any(row), want) {
			t.Fatalf("%q: DecodeRow got %#v, want %#v", b, row, want)
		}
		if again, err := DecodeObject(b, 20); err != nil || !reflect.DeepEqual(again, want) {
			t.Fatalf("%q: second decode got %#v, %v, want %#v", b, again, err, want)
		}
	})
}

func BenchmarkDecodeRow(b *testing.B) {
	body := []byte(`{"assignment_id":1000008,"task_id":32513,"task_name":"iTel Cabinet Repair Form","project_id":"5000001","status":"in_progress","previous_status":"assigned","assigned_to_user_id":20111,"assigned_by_user_id":10012,"assigned_to":{"user_id":20111,"first_name":"Ana","last_name":"Chen","email":"ana.chen@fieldtech.example"},"created_at":"2026-01-05T09:00:00.000Z","updated_at":"2026-01-05T12:00:00.000Z","completed_at":null,"form_response":{"answers":{"linear_feet":12.5,"cabinet_type":"Base"},"photos":[{"media_id":7000016,"file_name":"IMG_1234.jpg"}]}}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			DecodeRow(body)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			d := json.NewDecoder(bytes.NewReader(body))
			d.UseNumber()
			var v any
			if d.Decode(&v) == nil {
				refConvert(v)
			}
		}
	})
}
