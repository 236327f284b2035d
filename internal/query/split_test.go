package query

import (
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	script := `-- file header

-- First query
-- second line
SELECT 'a;b', "c;d" FROM t; -- trailing
/* block; comment */
SELECT $$x;y$$, $tag$ z; $tag$, $1;

-- only a comment;
   ;
SELECT 3`
	got := Split(script)
	want := []Statement{
		{Comment: "First query\nsecond line", SQL: `SELECT 'a;b', "c;d" FROM t`, Line: 5},
		{Comment: "trailing\nblock; comment", SQL: "SELECT $$x;y$$, $tag$ z; $tag$, $1", Line: 7},
		{Comment: "", SQL: "SELECT 3", Line: 11},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d statements %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("statement %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{"SELECT 1; SELECT 2", "-- c\nSELECT ';'", "/* unterminated", "'open", "$a$ x", "", ";;;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, st := range Split(s) {
			if strings.TrimSpace(st.SQL) == "" || st.SQL != strings.TrimSpace(st.SQL) {
				t.Fatalf("statement %q: empty or untrimmed", st.SQL)
			}
			if st.Line < 1 || st.Line > strings.Count(s, "\n")+1 {
				t.Fatalf("line %d out of range", st.Line)
			}
		}
	})
}
