package delta

import (
	"fmt"
	"testing"

	"kpipe/internal/jsonx"
)

// sharedTasks returns a JSON object decoder and five claimx_task_full
// maps, k = 0…4, shared by the rows of a memo test.
func sharedTasks(t *testing.T) (func(string) map[string]any, []map[string]any) {
	t.Helper()
	decode := func(s string) map[string]any {
		m, err := jsonx.DecodeObject([]byte(s), 0)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	shared := make([]map[string]any, 5)
	for k := range shared {
		shared[k] = decode(specTask(k+1, fmt.Sprintf(`,"k":%d`, k)))
	}
	return decode, shared
}

// TestAppendSharedStructMaps appends rows whose claimx_task_full is one of
// a few maps shared by many rows (as a cached lookup result is), and the
// same rows with a copy of the map in each row: the memo of shredded
// struct values must give the same files, byte for byte, the same stats
// and the same rows. The rows span several encoder flushes (flushRows),
// several files (two days), nulls, absent values, and more distinct maps
// before the first repeat than the memo records without one.
func TestAppendSharedStructMaps(t *testing.T) {
	decode, shared := sharedTasks(t)
	batch := func(from, n int, distinctFirst int, copyMaps bool) []map[string]any {
		var rows []map[string]any
		for i := from; i < from+n; i++ {
			row := decode(specMsg(i, "null", specOrig(i), specProj(i)))
			switch {
			case i-from < distinctFirst:
				row["claimx_task_full"] = decode(specTask(i, ""))
			case i%17 == 0:
				row["claimx_task_full"] = nil
			case i%19 == 0:
				delete(row, "claimx_task_full")
			default:
				k := (i / 7) % len(shared)
				if copyMaps {
					row["claimx_task_full"] = decode(specTask(k+1, fmt.Sprintf(`,"k":%d`, k)))
				} else {
					row["claimx_task_full"] = shared[k]
				}
			}
			if i%2 == 1 {
				row["day"] = int64(11) // a second partition: a second file
			}
			rows = append(rows, row)
		}
		return rows
	}
	sharedTB, copiedTB := rawSpecTable(t), rawSpecTable(t)
	before := memoReplays.Load()
	for bi, b := range []struct{ from, n, distinct int }{{0, 1500, 0}, {2000, 700, memoGiveUp + 10}, {3000, 40, 0}} {
		opts := AppendOptions{SchemaEvolution: true}
		sr, serr := sharedTB.Append(t.Context(), batch(b.from, b.n, b.distinct, false), opts)
		cr, cerr := copiedTB.Append(t.Context(), batch(b.from, b.n, b.distinct, true), opts)
		if serr != nil || sr.Files < 2 {
			t.Fatalf("batch %d: %d files, err %v", bi, sr.Files, serr)
		}
		sameAppend(t, bi, sharedTB, copiedTB, sr, serr, cr, cerr)
	}
	if memoReplays.Load() == before {
		t.Fatal("no struct value was appended from the memo")
	}
}

// TestAppendStableMapsAcrossCalls appends, with StableMaps, rows that each
// carry one of a few shared maps once per call: the later calls append
// those values from the memo the table's plan keeps, and the files,
// stats and rows must be those of the same rows with copied maps.
func TestAppendStableMapsAcrossCalls(t *testing.T) {
	decode, shared := sharedTasks(t)
	batch := func(from int, copyMaps bool) []map[string]any {
		var rows []map[string]any
		for k := range shared {
			i := from + k
			row := decode(specMsg(i, "null", specOrig(i), specProj(i)))
			if copyMaps {
				row["claimx_task_full"] = decode(specTask(k+1, fmt.Sprintf(`,"k":%d`, k)))
			} else {
				row["claimx_task_full"] = shared[k]
			}
			rows = append(rows, row)
		}
		return rows
	}
	stableTB, copiedTB := rawSpecTable(t), rawSpecTable(t)
	for bi := range 5 {
		before := memoReplays.Load()
		sr, serr := stableTB.Append(t.Context(), batch(10*bi, false), AppendOptions{SchemaEvolution: true, StableMaps: true})
		cr, cerr := copiedTB.Append(t.Context(), batch(10*bi, true), AppendOptions{SchemaEvolution: true})
		sameAppend(t, bi, stableTB, copiedTB, sr, serr, cr, cerr)
		// A map is recorded the second time the memo sees it; the first
		// call evolves the schema, which writes rows holding values that
		// carry no type with copies of their maps.
		if replays := memoReplays.Load() - before; bi > 2 && replays < int64(len(shared)) {
			t.Fatalf("call %d: %d struct values from the memo, want %d", bi, replays, len(shared))
		}
	}
}
