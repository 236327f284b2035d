package delta

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"kpipe/internal/jsonx"
)

// TestParallelShredSameFile shreds the same rows into one file per
// partition with one goroutine and with two and three shredders, and
// requires the same file bytes and the same stats JSON: the parallel path
// hands the Parquet writer the same values in the same calls. The rows
// (SPEC rows with their nested objects left raw, a lookup result map
// shared by many rows for the memo, nulls, absent values, -0.0) make
// files of a few blocks and a short last block; the error cases require
// the same error, naming the lowest failing row, whichever shredder has it.
func TestParallelShredSameFile(t *testing.T) {
	lazy := map[string]bool{}
	for _, k := range specLazy {
		lazy[k] = true
	}
	shared, err := jsonx.DecodeObject([]byte(specTask(1, "")), 0)
	if err != nil {
		t.Fatal(err)
	}
	rows := func(n int, bad ...int) []map[string]any {
		var out []map[string]any
		for i := range n {
			r, err := jsonx.DecodeObjectOpts([]byte(specMsg(i, "null", specOrig(i), specProj(i))), 0, jsonx.DecodeOptions{Lazy: lazy})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case i%11 == 0:
				delete(r, "claimx_task_full")
			case i%5 != 0:
				r["claimx_task_full"] = shared
			}
			if i%3 == 0 {
				r["day"] = int64(11) // a second partition
			}
			out = append(out, r)
		}
		for _, i := range bad {
			out[i]["assignment_id"] = "not a number"
		}
		return out
	}
	tb := rawSpecTable(t)
	// The table's schema evolved to hold the rows' nested objects.
	if _, err := tb.Append(t.Context(), rows(30), AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	schema := snap.metadata.Schema
	plan, err := tb.writePlanFor(snap, schema)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		data  []byte
		stats string
		err   string
	}
	shred := func(rows []map[string]any, procs int) []result {
		groups, present, err := groupRows(schema, snap.metadata.PartitionColumns, mapRows(rows), nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []result
		for _, g := range groups {
			if len(g.rows) < parallelShredMin {
				t.Fatalf("a file of %d rows is shredded serially", len(g.rows))
			}
			f := &dataFile{g: g, rows: g.rows, enc: newFileEncoder(plan, len(g.rows))}
			if err := shredFile(f, shredIn{rows: mapRows(rows), present: present}, procs); err != nil {
				out = append(out, result{err: fmt.Sprint(err)})
				continue
			}
			data, err := f.enc.encode()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, result{data: bytes.Clone(data), stats: f.enc.statsJSON()})
			f.enc.release()
		}
		return out
	}
	for _, c := range []struct {
		name    string
		rows    []map[string]any
		wantErr string
	}{
		{"blocks", rows(13*flushRows + 37), ""},
		{"exact blocks", rows(15 * flushRows), ""},
		{"bad rows", rows(13*flushRows, 5*flushRows+4, 7*flushRows+1, 8*flushRows+3), fmt.Sprintf("row %d", 5*flushRows+4)},
		{"bad first block", rows(13*flushRows, 9, 3*flushRows), "row 9"},
	} {
		serial := shred(c.rows, 1)
		for _, procs := range []int{2, 3} {
			got := shred(c.rows, procs)
			if len(got) != len(serial) {
				t.Fatalf("%s, %d shredders: %d files, serially %d", c.name, procs, len(got), len(serial))
			}
			for i := range got {
				if got[i].err != serial[i].err {
					t.Fatalf("%s, %d shredders, file %d: error %q, serially %q", c.name, procs, i, got[i].err, serial[i].err)
				}
				if got[i].stats != serial[i].stats {
					t.Fatalf("%s, %d shredders, file %d: stats\n%s\nserially\n%s", c.name, procs, i, got[i].stats, serial[i].stats)
				}
				if !bytes.Equal(got[i].data, serial[i].data) {
					t.Fatalf("%s, %d shredders, file %d: %d bytes differ from the serial file's %d", c.name, procs, i, len(got[i].data), len(serial[i].data))
				}
			}
		}
		var errs []string
		for i, r := range serial {
			if r.err == "" && len(r.data) == 0 {
				t.Fatalf("%s: file %d is empty", c.name, i)
			}
			if r.err != "" {
				errs = append(errs, r.err)
			}
		}
		if c.wantErr == "" && len(errs) > 0 || c.wantErr != "" && !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, c.wantErr+":") }) {
			t.Fatalf("%s: errors %q, want one naming %q", c.name, errs, c.wantErr)
		}
	}
}
