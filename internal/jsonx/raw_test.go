package jsonx

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// readAll rebuilds the next value of rd with the Reader's piecewise calls
// only (never Value), as a consumer walking it would.
func readAll(rd *Reader) any {
	switch rd.Kind() {
	case KindObject:
		rd.Object()
		m := map[string]any{}
		for {
			k, ok := rd.Key()
			if !ok {
				return m
			}
			m[k] = readAll(rd)
		}
	case KindArray:
		rd.Array()
		a := []any{}
		for rd.Elem() {
			a = append(a, readAll(rd))
		}
		return a
	case KindString:
		return rd.String()
	case KindNumber:
		n, f, isInt := rd.Number()
		if isInt {
			return n
		}
		return f
	case KindBool:
		return rd.Bool()
	case KindNull:
		rd.Null()
		return nil
	}
	rd.misuse()
	return nil
}

// lazyAll is a DecodeOptions.Lazy naming every top-level key of m.
func lazyAll(b []byte) map[string]bool {
	m, err := DecodeObjectOpts(b, 0, DecodeOptions{MaxDepth: hardMaxDepth})
	if err != nil {
		return map[string]bool{"a": true, "task": true}
	}
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// checkLazy checks that decoding b with every top-level key lazy fails
// exactly when the eager decode fails (the same kind of error), and
// otherwise gives, once materialized, the eager value; and that every
// RawObject reads, through Reader's piecewise calls, as its Map.
func checkLazy(t *testing.T, b []byte) {
	t.Helper()
	lazy := lazyAll(b)
	want, werr := DecodeObject(b, 0)
	got, err := DecodeObjectOpts(b, 0, DecodeOptions{Lazy: lazy})
	if (err == nil) != (werr == nil) {
		t.Fatalf("%q: lazy err %v, eager err %v", b, err, werr)
	}
	for _, target := range []error{ErrTooDeep, ErrInvalidUTF8} {
		if errors.Is(err, target) != errors.Is(werr, target) {
			t.Fatalf("%q: lazy err %v, eager err %v", b, err, werr)
		}
	}
	if err != nil {
		if err.Error() != werr.Error() {
			t.Fatalf("%q: lazy err %q, eager err %q", b, err, werr)
		}
		return
	}
	if m := Materialize(got); !reflect.DeepEqual(m, any(want)) {
		t.Fatalf("%q: materialized %#v, want %#v", b, m, want)
	}
	buf := append([]byte(nil), b...)
	aliased, err := DecodeObjectOpts(buf, 0, DecodeOptions{Lazy: lazy, Alias: true})
	if err != nil || !reflect.DeepEqual(Materialize(aliased), any(want)) {
		t.Fatalf("%q: Alias: %#v (err %v), want %#v", b, aliased, err, want)
	}
	for k, v := range got {
		r, ok := v.(*RawObject)
		if !ok {
			if _, isMap := want[k].(map[string]any); isMap {
				t.Fatalf("%q: %s: lazy object not left raw: %T", b, k, v)
			}
			continue
		}
		rd := r.Reader()
		if v := readAll(&rd); rd.Err() != nil || !reflect.DeepEqual(v, want[k]) {
			t.Fatalf("%q: %s: Reader read %#v (err %v), want %#v", b, k, v, rd.Err(), want[k])
		}
		if rd.Kind() != KindInvalid {
			t.Fatalf("%q: %s: Reader not at the end after the object", b, k)
		}
		rd = r.Reader()
		if rd.Skip(); rd.Err() != nil || rd.Kind() != KindInvalid {
			t.Fatalf("%q: %s: Skip: err %v", b, k, rd.Err())
		}
		rd = r.Reader()
		if v := rd.Value(); !reflect.DeepEqual(v, want[k]) {
			t.Fatalf("%q: %s: Value %#v, want %#v", b, k, v, want[k])
		}
	}
}

func FuzzDecodeLazy(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"e1","task_id":32513,"task":{"assigned_to_user_id":1001,"created_at":"2026-01-10T12:00:00Z","l":[1,2.5,"x",null,true,{"k":[]}]},"project":{}}`,
		`{"a":{"s":"\u00e9\ud83d\ude00x\"\\\/\b\f\n\r\t","b":-12.5e-3,"c":12345678901234567890,"d":-9223372036854775808,"e":1e3}}`,
		`{"a":{"x":1,"x":2},"b":[{"c":1}]}`, "{\"a\":{\"\xff\":1}}", `{"a":{"b":"\udc00"}}`, `{"a":{"b":1e400}}`,
		`{"a":{"b" 1}}`, `{"a":{"b":[1,]}}`, `{"a":{"b":01}}`, `{"a":{"b":tru}}`, `{"a":{"b":1}`, `{"a":{`,
		`{"a":` + strings.Repeat(`{"b":`, 63) + `1` + strings.Repeat("}", 63) + `}`,
		`{"a":` + strings.Repeat(`{"b":`, 64) + `1` + strings.Repeat("}", 64) + `}`,
		`{"a":{"b":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}}`,
		`{"a":"plain","task":7,"b":{ "sp" : [ 1 , 2 ] , "t" : true , "n" : null }}`,
		// Strings that Reader.String scans eight bytes at a time: non-ASCII
		// and escapes before, at and past the first eight bytes, in keys too.
		`{"a":{"Ünïcödé kéy, longer than eight":"ünïcödé välue, lönger than eight bytes é","b":"0123456789abcdef\n","c":"é0123456789\u00e9"}}`,
		`{"a":{"01234567":"0123456\"","x":"0123456789\t😀 tail"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkLazy(t, b) })
}

// FuzzNewRawObject: NewRawObject accepts what DecodeObject accepts, and
// the object it keeps decodes to what DecodeObject gives.
func FuzzNewRawObject(f *testing.F) {
	for _, s := range []string{
		` {"a": [1, 2], "b": {"c": "x\u00e9"}, "d": 7} `, `{}`, `{"a":{"x":1,"x":2}}`, "{\"\xff\":1}", `{"a":"\udc00"}`,
		`{"a":1e400}`, `{"a":01}`, `{"a":[1,]}`, `{"a":1}}`, `{"a":1} x`, `[1]`, `"s"`, `[1,`, ``, `   `,
		strings.Repeat(`{"b":`, 64) + `1` + strings.Repeat("}", 64),
		strings.Repeat(`{"b":`, 65) + `1` + strings.Repeat("}", 65),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := NewRawObject(s)
		want, werr := DecodeObject([]byte(s), 0)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: NewRawObject err %v, DecodeObject err %v", s, err, werr)
		}
		if err != nil {
			return
		}
		if got := r.Map(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: Map %#v, want %#v", s, got, want)
		}
		if txt := r.Text(); strings.TrimSpace(s) != txt {
			t.Fatalf("%q: Text %q", s, txt)
		}
	})
}

// TestReaderStringUnchecked checks that String does not return a control
// character or a broken string from input that was never checked, however
// far into the string it lies.
func TestReaderStringUnchecked(t *testing.T) {
	for _, s := range []string{
		"\"ab\ncd\"", "\"0123456789abcdef\x01\"", "\"0123456789abcdef", "\"é\\x\"",
	} {
		rd := Reader{s: s}
		if v := rd.String(); rd.Err() == nil {
			t.Errorf("%q: String = %q, want misuse", s, v)
		}
	}
	rd := Reader{s: "\"0123456789é\\tabc\"x"}
	if v := rd.String(); rd.Err() != nil || v != "0123456789é\tabc" || rd.s[rd.i:] != "x" {
		t.Errorf("String = %q, rest %q, err %v", v, rd.s[rd.i:], rd.Err())
	}
}

func TestRawObjectWith(t *testing.T) {
	m, err := DecodeObjectOpts([]byte(`{"task":{"a":1,"b":"x"},"n":2}`), 0, DecodeOptions{Lazy: map[string]bool{"task": true, "n": true}})
	if err != nil {
		t.Fatal(err)
	}
	if m["n"] != int64(2) {
		t.Fatalf("n = %#v: a lazy key that is not an object decodes as usual", m["n"])
	}
	r := m["task"].(*RawObject)
	inner, _ := NewRawObject(` {"z":[1]} `)
	r2 := r.With("b", "y").With("c", inner).With("b", "w")
	want := map[string]any{"a": int64(1), "b": "w", "c": map[string]any{"z": []any{int64(1)}}}
	if got := r2.Map(); !reflect.DeepEqual(got, want) {
		t.Fatalf("With: %#v, want %#v", got, want)
	}
	if got := r.Map(); !reflect.DeepEqual(got, map[string]any{"a": int64(1), "b": "x"}) {
		t.Fatalf("With changed the original: %#v", got)
	}
	if len(r2.Set()) != 2 || r2.Set()[0].Key != "b" || r2.src[r2.off:r2.end] != `{"a":1,"b":"x"}` {
		t.Fatalf("Set %v, bytes %q", r2.Set(), r2.src[r2.off:r2.end])
	}
	if inner.src[inner.off:inner.end] != `{"z":[1]}` {
		t.Fatalf("NewRawObject bytes %q", inner.src[inner.off:inner.end])
	}
	if _, err := NewRawObject(`[1]`); err == nil {
		t.Fatal("NewRawObject accepted an array")
	}
	if got, changed := MaterializeMap(want); changed || !reflect.DeepEqual(got, want) {
		t.Fatalf("MaterializeMap of a map without RawObjects: changed %v, %v", changed, got)
	}
	if got, changed := MaterializeMap(map[string]any{"t": r2}); !changed || !reflect.DeepEqual(got, map[string]any{"t": want}) {
		t.Fatalf("MaterializeMap: changed %v, %#v", changed, got)
	}
}

func TestReaderMisuse(t *testing.T) {
	r, _ := NewRawObject(`{"a":"x"}`)
	rd := r.Reader()
	rd.Array()
	if rd.Err() == nil || rd.Kind() != KindInvalid {
		t.Fatal("Array on an object: no error")
	}
}

// BenchmarkDecodeLazy compares decoding a message whose large objects are
// left raw with the eager decode (BenchmarkDecodeObject's body).
func BenchmarkDecodeLazy(b *testing.B) {
	body := []byte(`{"assignment_id":1000008,"task_id":32513,"task_name":"iTel Cabinet Repair Form","project_id":"5000001","status":"in_progress","previous_status":"assigned","assigned_to_user_id":20111,"assigned_by_user_id":10012,"assigned_to":{"user_id":20111,"first_name":"Ana","last_name":"Chen","email":"ana.chen@fieldtech.example"},"created_at":"2026-01-05T09:00:00.000Z","updated_at":"2026-01-05T12:00:00.000Z","completed_at":null,"form_response":{"answers":{"linear_feet":12.5,"cabinet_type":"Base"},"photos":[{"media_id":7000016,"file_name":"IMG_1234.jpg"}]}}`)
	lazy := map[string]bool{"assigned_to": true, "form_response": true}
	b.Run("eager", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, _ = DecodeObject(body, 0)
		}
	})
	b.Run("lazy", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, _ = DecodeObjectOpts(body, 0, DecodeOptions{Lazy: lazy})
		}
	})
	b.Run("lazy_then_read", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			m, _ := DecodeObjectOpts(body, 0, DecodeOptions{Lazy: lazy})
			for _, k := range []string{"assigned_to", "form_response"} {
				rd := m[k].(*RawObject).Reader()
				rd.Skip()
			}
		}
	})
}

// TestReaderAtOffset: a reader made at a position another reader gave by
// Offset reads the same value, and Text is the object without its space.
func TestReaderAtOffset(t *testing.T) {
	r, err := NewRawObject(` {"a": [1, 2], "b": {"c": "x\u00e9"}, "d": 7} `)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Text(), `{"a": [1, 2], "b": {"c": "x\u00e9"}, "d": 7}`; got != want {
		t.Fatalf("Text = %q, want %q", got, want)
	}
	rd := r.Reader()
	rd.Object()
	pos := map[string]int{}
	for {
		k, ok := rd.Key()
		if !ok {
			break
		}
		pos[k] = rd.Offset()
		rd.Skip()
	}
	want := map[string]any{"a": []any{int64(1), int64(2)}, "b": map[string]any{"c": "xé"}, "d": int64(7)}
	for k, w := range want {
		at := r.ReaderAt(pos[k])
		if got := at.Value(); !reflect.DeepEqual(got, w) || at.Err() != nil {
			t.Errorf("ReaderAt(%d) for %q: %#v (%v), want %#v", pos[k], k, got, at.Err(), w)
		}
	}
}
