package jsonx

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// refString is what encoding/json writes for s, HTML-escaped or not.
func refString(t testing.TB, s string, html bool) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(html)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

var stringSamples = []string{"", "plain", "quo\"te\\", "ctl\x00\x1f\n\t\b\f\r", "é ünï", "bad\xffutf8", "\u2028\u2029", "<html>&", "\x7f/"}

func TestAppendString(t *testing.T) {
	for _, s := range stringSamples {
		if got, want := string(AppendString([]byte("x"), s)), "x"+refString(t, s, false); got != want {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
		if got, want := string(AppendStringHTML(nil, s)), refString(t, s, true); got != want {
			t.Errorf("AppendStringHTML(%q) = %s, want %s", s, got, want)
		}
	}
}

// FuzzAppendString: both escapers write what encoding/json writes.
func FuzzAppendString(f *testing.F) {
	for _, s := range stringSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(AppendString(nil, s)), refString(t, s, false); got != want {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
		if got, want := string(AppendStringHTML(nil, s)), refString(t, s, true); got != want {
			t.Fatalf("AppendStringHTML(%q) = %s, want %s", s, got, want)
		}
	})
}
