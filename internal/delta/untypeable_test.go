package delta

import (
	"testing"
	"time"
)

// A key the table lacks whose value carries no type ("media": [], {} or
// null) is stored as null rather than refusing the row; the field joins the
// schema when a typed value arrives, and the earlier rows read it as null.
// (Found end to end: at low rates a flush often held only projects without
// media, and every such row went to the error topic.)
func TestUntypeableValuesAreNull(t *testing.T) {
	tb, store := newSpecTable(t)
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	row := func(id string, media any) map[string]any {
		return map[string]any{
			"event_id": id, "event_type": "CUSTOM_TASK_ASSIGNED", "event_timestamp": ts, "processed_timestamp": ts,
			"task_id": int32(32513), "project_id": "p1", "task_status": "assigned",
			"year": int32(2026), "month": int32(1), "day": int32(10),
			"project_data": map[string]any{"project_id": "p1", "media": media, "extra": map[string]any{"tags": []any{}}},
		}
	}
	for _, opts := range []AppendOptions{{SchemaEvolution: true}, {SchemaEvolution: true, RejectBadRows: true}} {
		res, err := tb.Append(t.Context(), []map[string]any{row("a", []any{}), row("b", nil), row("c", []any{nil})}, opts)
		if err != nil {
			t.Fatalf("%+v: %v", opts, err)
		}
		if res.Rows != 3 || len(res.Rejected) != 0 {
			t.Fatalf("%+v: rows %d, rejected %v", opts, res.Rows, res.Rejected)
		}
	}
	snap, _ := tb.Snapshot(t.Context())
	pd := snap.Schema().Field("project_data").Type.(*StructType)
	if pd.Field("media") != nil || pd.Field("extra") != nil {
		t.Fatalf("untypeable fields entered the schema: %v", pd)
	}
	// A typed value brings the field in.
	typed := row("d", []any{map[string]any{"media_id": int64(9), "kind": "photo"}})
	if _, err := tb.Append(t.Context(), []map[string]any{typed}, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	snap, _ = tb.Snapshot(t.Context())
	rows, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 7 {
		t.Fatalf("%d rows, want 7", len(rows))
	}
	for _, r := range rows {
		media := r["project_data"].(map[string]any)["media"]
		if r["event_id"] == "d" {
			l, ok := media.([]any)
			if !ok || len(l) != 1 {
				t.Fatalf("row d media = %#v", media)
			}
			continue
		}
		if media != nil {
			t.Fatalf("row %v media = %#v, want null", r["event_id"], media)
		}
	}
	if !untypeable(map[string]any{"a": []any{nil, map[string]any{}}}) || untypeable([]any{"x"}) || untypeable(0) {
		t.Fatal("untypeable misjudges")
	}
}
