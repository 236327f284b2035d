package delta

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSchemaJSONRoundTrip(t *testing.T) {
	in := `{"type":"struct","fields":[` +
		`{"name":"s","type":"string","nullable":false,"metadata":{"comment":"c"}},` +
		`{"name":"d","type":"decimal(10,2)","nullable":true,"metadata":{}},` +
		`{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},` +
		`{"name":"dt","type":"date","nullable":true,"metadata":{}},` +
		`{"name":"a","type":{"type":"array","elementType":{"type":"struct","fields":[{"name":"x","type":"byte","nullable":true,"metadata":{}}]},"containsNull":false},"nullable":true,"metadata":{}},` +
		`{"name":"m","type":{"type":"map","keyType":"string","valueType":"short","valueContainsNull":true},"nullable":true,"metadata":{}}]}`
	s, err := ParseSchema(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.SchemaString(); got != in {
		t.Fatalf("round trip\n got %s\nwant %s", got, in)
	}
	if got, want := s.String(), "struct<s:string,d:decimal(10,2),ts:timestamp,dt:date,a:array<struct<x:byte>>,m:map<string,short>>"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if _, err := ParseSchema(`{"type":"struct","fields":[{"name":"v","type":"interval","nullable":true}]}`); !errors.Is(err, ErrUnsupportedFeature) {
		t.Fatalf("unknown type: %v", err)
	}
}

func TestInferAndMerge(t *testing.T) {
	base, _ := InferType(map[string]any{"n": float64(1), "s": "x", "o": map[string]any{"a": true}})
	inc, _ := InferType(map[string]any{"n": float64(2), "o": map[string]any{"b": 1.5, "a": false}, "new": []any{"x"}})
	m, changed, err := MergeSchema(base.(*StructType), inc.(*StructType))
	if err != nil || !changed {
		t.Fatalf("merge: %v %v", changed, err)
	}
	if got, want := m.String(), "struct<n:double,o:struct<a:boolean,b:double>,s:string,new:array<string>>"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	bad, _ := InferType(map[string]any{"o": map[string]any{"a": "text"}})
	_, _, err = MergeSchema(m, bad.(*StructType))
	var se *SchemaError
	if !errors.As(err, &se) || se.Path != "o.a" || se.Existing != "boolean" || se.Incoming != "string" {
		t.Fatalf("conflict: %v", err)
	}
	if !strings.Contains(err.Error(), `"o.a"`) || !strings.Contains(err.Error(), "boolean") || !strings.Contains(err.Error(), "string") {
		t.Fatalf("message %q", err)
	}
}

func TestCoerceRow(t *testing.T) {
	s, _ := ParseSchema(`{"type":"struct","fields":[{"name":"i","type":"integer","nullable":false,"metadata":{}},{"name":"ts","type":"timestamp","nullable":true,"metadata":{}}]}`)
	got, err := CoerceRow(s, map[string]any{"i": float64(7), "ts": "2026-01-10T00:00:00.5Z"})
	if err != nil || got["i"] != int32(7) || !got["ts"].(time.Time).Equal(time.Date(2026, 1, 10, 0, 0, 0, 5e8, time.UTC)) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, row := range []map[string]any{
		{"i": int64(1) << 40},  // out of range
		{"i": 1.5},             // not integral
		{"i": nil},             // NOT NULL
		{"i": 1, "zzz": "new"}, // unknown column
	} {
		var se *SchemaError
		if err := ValidateRow(s, row); !errors.As(err, &se) {
			t.Fatalf("%v: got %v, want SchemaError", row, err)
		}
	}
}

func TestAppendReportsRowIndex(t *testing.T) {
	tb, _ := newSpecTable(t)
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	rows := []map[string]any{specRow(1, 0, ts), specRow(1, 1, ts), specRow(1, 2, ts)}
	rows[2]["task_id"] = "not a number"
	_, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true})
	var se *SchemaError
	if !errors.As(err, &se) || se.Row != 2 || se.Path != "task_id" {
		t.Fatalf("got %v", err)
	}
	rows[2] = specRow(1, 2, ts)
	rows[1]["claimx_task_full"].(map[string]any)["status"] = 5.0 // string field gets a number
	_, err = tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true})
	if !errors.As(err, &se) || se.Row != 1 || se.Path != "claimx_task_full.status" {
		t.Fatalf("got %v", err)
	}
}

func TestLoadTableDefErrors(t *testing.T) {
	def, err := LoadTableDef(specTableDef)
	if err != nil {
		t.Fatal(err)
	}
	if f := def.Schema.Field("task_id"); f == nil || f.Type != TypeInteger || f.Nullable {
		t.Fatalf("task_id: %+v", f)
	}
	if len(def.Inferred) != 3 || strings.Join(def.PartitionColumns, ",") != "year,month,day" {
		t.Fatalf("def: %+v", def)
	}
	for _, c := range []struct{ yaml, want string }{
		{"name: t\ncolumns:\n  - {name: a, type: string}\nbogus: 1\n", "4:1"},
		{"name: t\ncolumns:\n  - name: a\n    type: strnig\n", "line 4"},
		{"name: t\ncolumns:\n  - {name: a, type: string}\npartition_columns: [b]\n", `partition column "b"`},
	} {
		p := filepath.Join(t.TempDir(), "t.yaml")
		if err := os.WriteFile(p, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadTableDef(p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.yaml, err, c.want)
		}
	}
}
