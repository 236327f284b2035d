package delta

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestEvolveRefusesFieldsDifferingByCase: a new struct whose keys differ
// only by case is refused (rejected with RejectBadRows), instead of
// committing a schema that ParseSchema, and so every later reader, refuses.
func TestEvolveRefusesFieldsDifferingByCase(t *testing.T) {
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	bad := specRow(1, 0, ts)
	bad["original_event"] = map[string]any{"X": float64(0), "x": "0"}
	good := specRow(1, 1, ts)

	tb, store := newSpecTable(t, WithAutoCompact(AutoCompact{Disable: true}))
	_, err := tb.Append(t.Context(), []map[string]any{bad, good}, AppendOptions{SchemaEvolution: true})
	var se *SchemaError
	if !errors.As(err, &se) || se.Row != 0 || se.Path != "original_event.x" || !strings.Contains(se.Reason, "only by case") {
		t.Fatalf("append: %v", err)
	}
	res, err := tb.Append(t.Context(), []map[string]any{bad, good}, AppendOptions{SchemaEvolution: true, RejectBadRows: true})
	if err != nil || len(res.Rejected) != 1 || res.Rejected[0].Row != 0 || res.Rows != 1 {
		t.Fatalf("append with RejectBadRows: %+v %v", res, err)
	}
	re, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := re.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(t.Context(), store, snap)
	if err != nil || len(rows) != 1 || rows[0]["event_id"] != good["event_id"] {
		t.Fatalf("read back: %v %v", rows, err)
	}
}
