package delta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

// fuzzRows turns each line of b that is JSON into a row of the spec table
// whose original_event.v is the value (and whose project_data is the value
// too when it is an object), so the fuzzer explores new fields, nested
// types and their conflicts.
func fuzzRows(b []byte) []map[string]any {
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	var rows []map[string]any
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(rows) == 8 {
			break
		}
		var v any
		if json.Unmarshal(line, &v) != nil {
			continue
		}
		r := specRow(0, i, ts)
		r["event_id"] = fmt.Sprintf("e%d", i)
		r["original_event"] = map[string]any{"event_id": fmt.Sprintf("e%d", i), "v": v}
		if m, ok := v.(map[string]any); ok {
			r["project_data"] = m
		}
		rows = append(rows, r)
	}
	return rows
}

func newMemSpecTable(t *testing.T) *Table {
	t.Helper()
	def, err := LoadTableDef(specTableDef)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Create(t.Context(), newMemStorage(), def)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func readSorted(t *testing.T, tb *Table) []map[string]any {
	t.Helper()
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(t.Context(), tb.Storage(), snap)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rows, func(a, b map[string]any) int {
		return cmpString(a["event_id"].(string), b["event_id"].(string))
	})
	return rows
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// FuzzAppendRejectBadRows checks that one Append with RejectBadRows and
// schema evolution never panics or fails for what the rows hold, and ends
// exactly as appending the rows one at a time: the same rows rejected, the
// same schema, the same values read back.
func FuzzAppendRejectBadRows(f *testing.F) {
	for _, s := range []string{
		"{\"a\":{\"x\":\"y\"}}\n\"str\"",
		"{\"a\":{}}\n{\"a\":\"s\"}",
		"{}\n\"s\"\n{\"x\":1}",
		"[]\n[1]\n[\"a\"]\n[[1]]",
		"{\"a\":[]}\n{\"a\":[{\"b\":null}]}\n{\"a\":[{\"b\":1}]}\n{\"a\":[{\"b\":\"x\"}]}",
		"1\n1.5\ntrue\nnull\n\"x\"",
		"{\"n\":{\"id\":1}}\n{\"n\":{\"id\":1.5}}\n{\"n\":{\"id\":\"1\"}}",
		"{\"A\":1}\n{\"a\":2}",
		"{\"m\":{\"k\":[null,{}]}}\n{\"m\":{\"k\":[{\"z\":true}]}}",
		"[[],[1]]\n[[2]]", "[1,\"a\"]\n[\"b\"]", "[{},{\"a\":1}]\n[{\"a\":2}]", "{\"x\":[null,[]]}\n{\"x\":[[\"s\"]]}",
		"{\"d\":" + string(bytes.Repeat([]byte("{\"d\":"), 300)) + "1" + string(bytes.Repeat([]byte("}"), 301)),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rows := fuzzRows(b)
		if len(rows) == 0 {
			return
		}
		opts := AppendOptions{SchemaEvolution: true, RejectBadRows: true}
		batch := newMemSpecTable(t)
		res, err := batch.Append(t.Context(), rows, opts)
		if err != nil {
			t.Fatalf("%q: Append: %v", b, err)
		}
		var rejected []int
		for k, se := range res.Rejected {
			if se.Row < 0 || se.Row >= len(rows) || (k > 0 && se.Row <= res.Rejected[k-1].Row) {
				t.Fatalf("%q: rejection %d names row %d", b, k, se.Row)
			}
			rejected = append(rejected, se.Row)
		}
		if int(res.Rows)+len(rejected) != len(rows) {
			t.Fatalf("%q: %d rows written and %d rejected of %d", b, res.Rows, len(rejected), len(rows))
		}

		single := newMemSpecTable(t)
		var singleRejected []int
		for i, r := range rows {
			res, err := single.Append(t.Context(), []map[string]any{r}, opts)
			if err != nil {
				t.Fatalf("%q: row %d alone: %v", b, i, err)
			}
			if len(res.Rejected) > 0 {
				singleRejected = append(singleRejected, i)
			}
		}
		if !slices.Equal(rejected, singleRejected) {
			t.Fatalf("%q: one Append rejected rows %v (%v), one at a time %v", b, rejected, res.Rejected, singleRejected)
		}
		bs, _ := batch.Snapshot(t.Context())
		ss, _ := single.Snapshot(t.Context())
		if !TypesEqual(bs.Schema(), ss.Schema()) {
			t.Fatalf("%q: schema %v, one at a time %v", b, bs.Schema(), ss.Schema())
		}
		if got, want := readSorted(t, batch), readSorted(t, single); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: read back\n%v\none at a time\n%v", b, got, want)
		}
	})
}
