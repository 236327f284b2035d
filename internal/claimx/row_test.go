package claimx

import (
	"errors"
	"reflect"
	"testing"

	"kpipe/internal/httpconn"
	"kpipe/internal/jsonx"
)

// FuzzDecodeRow: DecodeRow accepts what jsonx.DecodeObject accepts, with
// the same value, and every refusal wraps httpconn.ErrMalformedBody (the
// decoder itself is fuzzed against encoding/json in jsonx).
func FuzzDecodeRow(f *testing.F) {
	for _, s := range []string{
		sampleEvent, `{"a":[1,-2,3.5,1e3,12345678901234567890]}`, "{\"a\":\"caf\xc3\"}", `{"a":"\udc00"}`,
		`[1]`, `{"a":`, `{} {}`, ``, `{"a":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		row, err := DecodeRow(b)
		want, werr := jsonx.DecodeObject(b, 0)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: DecodeRow err %v, DecodeObject err %v", b, err, werr)
		}
		if err != nil {
			if !errors.Is(err, httpconn.ErrMalformedBody) {
				t.Fatalf("%q: DecodeRow err %v, want it to wrap %v", b, err, httpconn.ErrMalformedBody)
			}
			return
		}
		if !reflect.DeepEqual(map[string]any(row), want) {
			t.Fatalf("%q: DecodeRow got %#v, want %#v", b, row, want)
		}
	})
}
