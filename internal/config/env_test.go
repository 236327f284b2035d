package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	env := func(n string) (string, bool) {
		m := map[string]string{"A": "alpha", "EMPTY": "", "URL": "http://h:1/p"}
		v, ok := m[n]
		return v, ok
	}
	tests := []struct {
		name, in, want string
		missing        []string
	}{
		{name: "plain", in: "x: ${A}\n", want: "x: alpha\n"},
		{name: "default unused", in: "x: ${A:zz}", want: "x: alpha"},
		{name: "default used", in: "x: ${B:zz}", want: "x: zz"},
		{name: "default with colon", in: "x: ${B:http://a:2}", want: "x: http://a:2"},
		{name: "empty value takes default", in: "x: ${EMPTY:d}", want: "x: d"},
		{name: "empty default", in: "x: '${B:}'", want: "x: ''"},
		{name: "current timestamp kept", in: `p: "${CURRENT_TIMESTAMP}"`, want: `p: "${CURRENT_TIMESTAMP}"`},
		{name: "escaped", in: "x: $${A}", want: "x: ${A}"},
		{name: "comment untouched", in: "x: ${A}  # set ${NOPE}\n", want: "x: alpha  # set ${NOPE}\n"},
		{name: "hash in quotes is not a comment", in: `x: "a # ${A}"`, want: `x: "a # alpha"`},
		{name: "apostrophe in plain scalar", in: "x: don't ${A} # ${NOPE}", want: "x: don't alpha # ${NOPE}"},
		{name: "not a variable", in: "x: ${1A} $A ${", want: "x: ${1A} $A ${"},
		{name: "missing listed", in: "a: ${M1}\nb: ${A}\nc: x ${M2}\n", missing: []string{"M1 (f.yaml:1:4)", "M2 (f.yaml:3:6)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Expand([]byte(tt.in), "f.yaml", env)
			if len(tt.missing) > 0 {
				var me *MissingEnvError
				if !errors.As(err, &me) {
					t.Fatalf("got %v, want *MissingEnvError", err)
				}
				for _, m := range tt.missing {
					if !strings.Contains(me.Error(), m) {
						t.Errorf("error %q does not name %s", me, m)
					}
				}
				if len(me.Vars) != len(tt.missing) {
					t.Errorf("got %d missing, want %d", len(me.Vars), len(tt.missing))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzExpand checks invariants of expansion on any input: it never panics,
// text without "${" is unchanged, an environment that defines every name
// leaves no missing variable, and every reported position is inside the
// input.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{
		"x: ${A}\n", "x: ${A:def}", "${", "${}", "$${A}", "# ${A}", `"${A}" # ${B}`,
		"a: ${A}\nb: ${B:x}\nc: ${CURRENT_TIMESTAMP}\n", "\xff${A", "${A:${B}}", "x: ${A",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		none := func(string) (string, bool) { return "", false }
		all := func(string) (string, bool) { return "v", true }
		out, err := Expand(data, "f", none)
		if !bytes.Contains(data, []byte("${")) && (err != nil || !bytes.Equal(out, data)) {
			t.Fatalf("input without ${ changed: %q -> %q, %v", data, out, err)
		}
		var me *MissingEnvError
		if err != nil {
			if !errors.As(err, &me) {
				t.Fatalf("unexpected error type %T", err)
			}
			lines := bytes.Count(data, []byte("\n")) + 1
			for _, v := range me.Vars {
				if v.Pos.Line < 1 || v.Pos.Line > lines || v.Pos.Column < 1 || !validVarName(v.Name) {
					t.Fatalf("bad missing var %+v for %q", v, data)
				}
			}
		}
		if _, err := Expand(data, "f", all); err != nil {
			t.Fatalf("all variables set but got %v", err)
		}
	})
}
