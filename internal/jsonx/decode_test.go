package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
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
		opts DecodeOptions
		want map[string]any
		err  bool
		// errIs is the sentinel a refused input's error wraps, for input
		// the reference (encoding/json) accepts.
		errIs error
		// offset is the *DecodeError's offset when errIs is set.
		offset int
	}{
		{name: "event", in: `{"event_id":"e1","task_id":32513,"x":1.5,"big":12345678901234567890,"t":true,"n":null,"task":{"a":[1,"b",{}]}}`,
			want: map[string]any{"event_id": "e1", "task_id": int64(32513), "x": 1.5, "big": 12345678901234567890.0, "t": true, "n": nil, "task": map[string]any{"a": []any{int64(1), "b", map[string]any{}}}}},
		{name: "int64 bounds", in: `{"a":9223372036854775807,"b":-9223372036854775808,"c":9223372036854775808}`,
			want: map[string]any{"a": int64(9223372036854775807), "b": int64(-9223372036854775808), "c": 9223372036854775808.0}},
		{name: "escapes", in: `{"k\u00e9":"a\"b\\c\n\ud83d\ude00"}`, want: map[string]any{"ké": "a\"b\\c\n😀"}},
		{name: "lone surrogate", in: `{"a":"\ud800x"}`, errIs: ErrInvalidUTF8, offset: 6},
		{name: "lone low surrogate", in: `{"a":"x\udc00"}`, errIs: ErrInvalidUTF8, offset: 7},
		{name: "surrogate without its pair", in: `{"a":"\ud83d\u0041"}`, errIs: ErrInvalidUTF8, offset: 6},
		{name: "escapes and invalid UTF-8", in: "{\"a\":\"a\\n\\n\xff\",\"b\":\"a\\n\\n\xff\"}", errIs: ErrInvalidUTF8, offset: 11},
		{name: "invalid UTF-8 without escapes", in: "{\"a\":\"caf\xc3\"}", errIs: ErrInvalidUTF8, offset: 9},
		{name: "invalid UTF-8 in a key", in: "{\"\xff\xfe\":1}", errIs: ErrInvalidUTF8, offset: 2},
		{name: "truncated rune", in: "{\"a\":\"\xe2\x82\"}", errIs: ErrInvalidUTF8, offset: 6},
		{name: "encoded surrogate", in: "{\"a\":\"\xed\xa0\x80\"}", errIs: ErrInvalidUTF8, offset: 6},
		{name: "valid UTF-8", in: "{\"a\":\"café ✓ 😀\",\"k\\u00e9\":\"\\u00e9\"}", want: map[string]any{"a": "café ✓ 😀", "ké": "é"}},
		{name: "repeated values", in: `{"a":"open","b":"open","c":70012,"d":70012,"e":-5}`, want: map[string]any{"a": "open", "b": "open", "c": int64(70012), "d": int64(70012), "e": int64(-5)}},
		{name: "exponent is a float", in: `{"a":1e3,"b":-0}`, want: map[string]any{"a": 1000.0, "b": int64(0)}},
		{name: "duplicate key, last wins", in: ` {"a":1,"a":2} `, want: map[string]any{"a": int64(2)}},
		{name: "default max depth", in: nest(DefaultMaxDepth), want: map[string]any{"a": nestedArrays(DefaultMaxDepth - 1)}},
		{name: "beyond default max depth", in: nest(DefaultMaxDepth + 1), errIs: ErrTooDeep, offset: 5 + DefaultMaxDepth - 1},
		{name: "objects beyond default max depth", in: strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70), errIs: ErrTooDeep, offset: 5 * 64},
		{name: "max depth 3", in: `{"a":{"b":[1]}}`, opts: DecodeOptions{MaxDepth: 3}, want: map[string]any{"a": map[string]any{"b": []any{int64(1)}}}},
		{name: "beyond max depth 3", in: `{"a":{"b":[[1]]}}`, opts: DecodeOptions{MaxDepth: 3}, errIs: ErrTooDeep, offset: 11},
		{name: "max depth 10000", in: nest(10000), opts: DecodeOptions{MaxDepth: 10000}, want: map[string]any{"a": nestedArrays(9999)}},
		{name: "beyond max depth 10000", in: nest(10001), opts: DecodeOptions{MaxDepth: 10000}, err: true, errIs: ErrTooDeep, offset: 5 + 9999},
		{name: "max depth capped at 10000", in: nest(10001), opts: DecodeOptions{MaxDepth: 1 << 30}, err: true, errIs: ErrTooDeep, offset: 5 + 9999},
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
			got, err := DecodeObjectOpts([]byte(tt.in), 0, tt.opts)
			wantErr := tt.err || tt.errIs != nil
			if (err != nil) != wantErr {
				t.Fatalf("got error %v, want error %v", err, wantErr)
			}
			if tt.errIs != nil {
				var de *DecodeError
				if !errors.Is(err, tt.errIs) || !errors.As(err, &de) || de.Offset != tt.offset {
					t.Fatalf("got %v, want a *DecodeError wrapping %v at offset %d", err, tt.errIs, tt.offset)
				}
			}
			if !wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
			// The reference refuses what is a syntax error; what the
			// decoder refuses for its limits it accepts.
			if _, rerr := refDecode([]byte(tt.in)); (rerr != nil) != tt.err {
				t.Fatalf("reference error %v, want error %v", rerr, tt.err)
			}
		})
	}
}

// invalidAt reports whether b holds, at off, a byte that does not start a
// valid UTF-8 sequence, or the \u escape of a UTF-16 surrogate.
func invalidAt(b []byte, off int) bool {
	if off < 0 || off >= len(b) {
		return false
	}
	if r, size := utf8.DecodeRune(b[off:]); r == utf8.RuneError && size <= 1 {
		return true
	}
	if len(b)-off < 6 || b[off] != '\\' || b[off+1] != 'u' {
		return false
	}
	r, err := strconv.ParseUint(string(b[off+2:off+6]), 16, 16)
	return err == nil && utf16.IsSurrogate(rune(r))
}

// depthAt is the nesting of the container opening at b[off], counting
// brackets outside strings before it (1 for the top-level object).
func depthAt(b []byte, off int) int {
	depth, inStr := 0, false
	for i := 0; i < off; i++ {
		switch c := b[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '{' || c == '['):
			depth++
		case !inStr && (c == '}' || c == ']'):
			depth--
		}
	}
	return depth + 1
}

// valueDepth is the nesting of objects and arrays in v.
func valueDepth(v any) int {
	d := 0
	switch t := v.(type) {
	case map[string]any:
		for _, e := range t {
			d = max(d, valueDepth(e))
		}
		return d + 1
	case []any:
		for _, e := range t {
			d = max(d, valueDepth(e))
		}
		return d + 1
	}
	return 0
}

func nestedArrays(n int) any {
	v := []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

// FuzzDecodeJSON checks DecodeObject against encoding/json: it accepts
// exactly what the reference accepts, with the same value, and again the
// same value on a second decode (the boxed values it shares), except what
// it refuses for its own rules: nesting deeper than its
// MaxDepth (ErrTooDeep), and strings that are not UTF-8 (ErrInvalidUTF8),
// which the reference accepts with U+FFFD in place. Each such refusal is
// checked at the offset it names.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"e1","event_type":"CUSTOM_TASK_ASSIGNED","project_id":"5000001","ingested_at":"2026-01-05T08:00:00.123Z","task_assignment_id":1000008,"media_id":null,"video_collaboration_id":null,"master_file_name":null,"raw_data":{"customTaskId":32513,"nested":{"a":[1,2.5]}},"extra":"kept"}`,
		`{"event_id":"e1","task_id":32513,"task":{"assigned_to_user_id":1001,"created_at":"2026-01-10T12:00:00Z"},"l":[1,2.5,"x",null,true]}`,
		`{"a":[1,-2,3.5,1e3,-0,12345678901234567890,9223372036854775807,-9223372036854775808]}`,
		`{"a":"\u00e9\ud83d\ude00\ud800x\"\\\/\b\f\n\r\t","b":-12.5e-3}`,
		`{"a":[true,false,null,{}]}`, `{"a":1,"a":2}`, "{\"\xff\xfe\":\"\xff\"}", `{"a" 1}`, `{"a":[1,]}`,
		`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":1e400}`, `{} }`, ` {"k":"v"} `, `{"a":1} x`,
		`{"a":`, `[]`, `"x"`, `nul`, ``,
		"{\"a\":\"caf\xc3\"}", `{"a":"\udc00"}`, `{"a":"\ud83d\u0041"}`, "{\"a\":\"\xed\xa0\x80\"}",
		`{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
		`{"a":` + strings.Repeat(`{"b":`, 63) + `1` + strings.Repeat("}", 63) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeObject(b, 0)
		want, werr := refDecode(b)
		var de *DecodeError
		switch {
		case errors.Is(err, ErrInvalidUTF8):
			if !errors.As(err, &de) || !invalidAt(b, de.Offset) {
				t.Fatalf("%q: %v: no invalid UTF-8 or lone surrogate there", b, err)
			}
			return
		case errors.Is(err, ErrTooDeep):
			if !errors.As(err, &de) || de.Offset >= len(b) || (b[de.Offset] != '{' && b[de.Offset] != '[') || depthAt(b, de.Offset) != DefaultMaxDepth+1 {
				t.Fatalf("%q: %v: not the first container beyond depth %d", b, err, DefaultMaxDepth)
			}
			if werr == nil && valueDepth(want) <= DefaultMaxDepth {
				t.Fatalf("%q: %v, but the reference's value nests %d", b, err, valueDepth(want))
			}
			// Without the limit, it agrees with the reference again.
			got, err = DecodeObjectOpts(b, 0, DecodeOptions{MaxDepth: 10000})
			if errors.Is(err, ErrInvalidUTF8) {
				return
			}
			if (err == nil) != (werr == nil) {
				t.Fatalf("%q: MaxDepth 10000: err %v, reference err %v", b, err, werr)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: MaxDepth 10000: got %#v, want %#v", b, got, want)
			}
			return
		}
		if err == nil && valueDepth(got) > DefaultMaxDepth {
			t.Fatalf("%q: accepted nesting %d", b, valueDepth(got))
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: err %v, reference err %v", b, err, werr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, want %#v", b, got, want)
		}
		if again, err := DecodeObject(b, 20); err != nil || !reflect.DeepEqual(again, want) {
			t.Fatalf("%q: second decode got %#v, %v, want %#v", b, again, err, want)
		}
	})
}

func BenchmarkDecodeObject(b *testing.B) {
	body := []byte(`{"assignment_id":1000008,"task_id":32513,"task_name":"iTel Cabinet Repair Form","project_id":"5000001","status":"in_progress","previous_status":"assigned","assigned_to_user_id":20111,"assigned_by_user_id":10012,"assigned_to":{"user_id":20111,"first_name":"Ana","last_name":"Chen","email":"ana.chen@fieldtech.example"},"created_at":"2026-01-05T09:00:00.000Z","updated_at":"2026-01-05T12:00:00.000Z","completed_at":null,"form_response":{"answers":{"linear_feet":12.5,"cabinet_type":"Base"},"photos":[{"media_id":7000016,"file_name":"IMG_1234.jpg"}]}}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			DecodeObject(body, 0)
		}
	})
	// Non-ASCII strings take the decoder's slow path, which checks UTF-8.
	accented := bytes.ReplaceAll(bytes.ReplaceAll(body, []byte("Chen"), []byte("Chén ✓")), []byte("Base"), []byte("Bäse"))
	b.Run("fast_non_ascii", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			DecodeObject(accented, 0)
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

// TestPlainEnd checks the eight-bytes-at-a-time scan against a byte loop:
// every byte value at every position of a run, with plain bytes on both
// sides, and runs that hold two stops (a borrow from the first must not
// hide or move it).
func TestPlainEnd(t *testing.T) {
	slow := func(b []byte, i int) int {
		for ; i < len(b); i++ {
			if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
				return i
			}
		}
		return i
	}
	for n := 0; n <= 19; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := bytes.Repeat([]byte{'a'}, n)
				b[pos] = byte(c)
				if pos+1 < n {
					b[pos+1] = 0x7f // the largest plain byte after it
				}
				for from := 0; from <= pos; from++ {
					if got, want := plainEnd(b, from), slow(b, from); got != want {
						t.Fatalf("plainEnd(%q, %d) = %d, want %d", b, from, got, want)
					}
				}
			}
		}
		b := bytes.Repeat([]byte{'~'}, n)
		if got := plainEnd(b, 0); got != n {
			t.Fatalf("plainEnd of %d plain bytes = %d", n, got)
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, rnd.IntN(40))
		for i := range b {
			b[i] = byte(0x1e + rnd.IntN(0x64)) // mostly plain, some stops
		}
		from := 0
		if len(b) > 0 {
			from = rnd.IntN(len(b))
		}
		if got, want := plainEnd(b, from), slow(b, from); got != want {
			t.Fatalf("plainEnd(%q, %d) = %d, want %d", b, from, got, want)
		}
	}
}
