package stack

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRowsAdded(t *testing.T) {
	row := func(id string) map[string]any { return map[string]any{"event_id": id} }
	before := []map[string]any{row("a"), row("b")}
	after := []map[string]any{row("a"), row("b"), row("a"), row("c")}
	got := rowsAdded(before, after)
	var ids []string
	for _, r := range got {
		ids = append(ids, r["event_id"].(string))
	}
	if strings.Join(ids, ",") != "a,c" {
		t.Fatalf("got %v, want [a c]", ids)
	}
	if got := rowsAdded(nil, after); len(got) != len(after) {
		t.Fatalf("nothing before: got %d rows, want %d", len(got), len(after))
	}
}

func TestReportTable(t *testing.T) {
	row := func(id string) map[string]any { return map[string]any{"event_id": id} }
	tests := []struct {
		name string
		rows []map[string]any
		ok   bool
		want string
	}{
		{"exact", []map[string]any{row("a"), row("b")}, true, "OK: the table holds every tracked event exactly once"},
		{"missing", []map[string]any{row("a")}, false, "1 missing, 0 duplicated, 0 unexpected"},
		{"duplicate and unexpected", []map[string]any{row("a"), row("b"), row("b"), row("x")}, false, "0 missing, 1 duplicated, 1 unexpected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := reportTable(&out, "tbl", tc.rows, map[string]bool{"a": true, "b": true}, time.Second)
			if (err == nil) != tc.ok {
				t.Fatalf("got error %v, want ok %v", err, tc.ok)
			}
			text := out.String()
			if err != nil {
				text = err.Error()
			}
			if !strings.Contains(text, tc.want) {
				t.Fatalf("got %q, want it to contain %q", text, tc.want)
			}
		})
	}
}
