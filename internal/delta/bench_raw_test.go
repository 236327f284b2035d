package delta

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"kpipe/internal/jsonx"
)

// BenchmarkAppendRaw is BenchmarkAppend of rows decoded from JSON, with
// the nested objects as maps (lazy=false) or as *jsonx.RawObject
// (lazy=true, DecodeOptions.Lazy), which Append shreds from their bytes.
// shape=big gives claimx_task_full 60 more fields and an array of 20
// structs, the size of a production task; bad=1 makes one row of the
// batch a type conflict, rejected (RejectBadRows), so that the batch with
// RawObjects is shredded again from their maps; rows=1 gives the rows by
// column (AppendRows). Only Append is timed, unless decode=1: then
// decoding the messages is too.
func BenchmarkAppendRaw(b *testing.B) {
	for _, c := range []struct {
		store string
		big   bool
		lazy  bool
		bad   bool
		// decode: the messages are decoded in the timed loop too.
		decode bool
		// byColumn: AppendRows of the rows by column.
		byColumn bool
	}{
		{"mem", false, false, false, false, false}, {"mem", false, true, false, false, false},
		{"mem", true, false, false, false, false}, {"mem", true, true, false, false, false},
		{"local", true, false, false, false, false}, {"local", true, true, false, false, false},
		{"mem", true, false, true, false, false}, {"mem", true, true, true, false, false},
		{"mem", true, false, false, true, false}, {"mem", true, true, false, true, false},
		{"mem", true, false, true, true, false}, {"mem", true, true, true, true, false},
		{"mem", false, true, false, false, true}, {"mem", true, true, false, false, true},
	} {
		shape := "spec"
		if c.big {
			shape = "big"
		}
		name := fmt.Sprintf("store=%s/shape=%s/lazy=%v", c.store, shape, c.lazy)
		if c.bad {
			name += "/bad=1"
		}
		if c.decode {
			name += "/decode=1"
		}
		if c.byColumn {
			name += "/rows=1"
		}
		b.Run(name, func(b *testing.B) {
			var tb *Table
			if c.store == "mem" {
				def, err := LoadTableDef(specTableDef)
				if err != nil {
					b.Fatal(err)
				}
				if tb, err = Create(b.Context(), newMemStorage(), def, WithCheckpointInterval(1<<30)); err != nil {
					b.Fatal(err)
				}
			} else {
				tb, _ = newSpecTable(b, WithCheckpointInterval(1<<30))
			}
			msgs := benchJSONMsgs(b, 10000, c.big)
			rows := decodeBenchRows(b, msgs, c.lazy)
			opts := AppendOptions{SchemaEvolution: true}
			if _, err := tb.Append(b.Context(), rows, opts); err != nil {
				b.Fatal(err)
			}
			if c.bad {
				// One row of a type conflict, rejected: with RawObjects,
				// the batch falls back to the maps.
				// (one key the schema has, of another type).
				m, _ := jsonx.DecodeObject(msgs[len(msgs)/2], 0)
				m["claimx_task_full"] = map[string]any{"status": 1.5}
				msgs[len(msgs)/2], _ = json.Marshal(m)
				rows = decodeBenchRows(b, msgs, c.lazy)
				opts.RejectBadRows = true
			}
			falls, rowsFalls := rawFallbacks.Load(), rowsFallbacks.Load()
			byColumn := rowsOf(rows)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if c.decode {
					rows = decodeBenchRows(b, msgs, c.lazy)
				}
				var res CommitResult
				var err error
				if c.byColumn {
					res, err = tb.AppendRows(b.Context(), byColumn, opts)
				} else {
					res, err = tb.Append(b.Context(), rows, opts)
				}
				if err != nil || len(res.Rejected) != btoi(c.bad) {
					b.Fatal(res.Rejected, err)
				}
			}
			b.ReportMetric(float64(len(rows)*b.N)/b.Elapsed().Seconds(), "rows/s")
			if !c.bad && rawFallbacks.Load() != falls {
				b.Fatal("the RawObjects were materialized: the fast path was not taken")
			}
			if rowsFallbacks.Load() != rowsFalls {
				b.Fatal("AppendRows fell back to the row maps")
			}
		})
	}
}

// decodeBenchRows decodes msgs with jsonx, their nested objects left raw
// when lazy.
func decodeBenchRows(b *testing.B, msgs [][]byte, lazy bool) []map[string]any {
	opts := jsonx.DecodeOptions{}
	if lazy {
		opts.Lazy = map[string]bool{"claimx_task_full": true, "original_event": true, "project_data": true}
	}
	rows := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		var err error
		if rows[i], err = jsonx.DecodeObjectOpts(m, 0, opts); err != nil {
			b.Fatal(err)
		}
	}
	return rows
}

// benchJSONMsgs are n SPEC rows of one day as JSON messages.
func benchJSONMsgs(b *testing.B, n int, big bool) [][]byte {
	start := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	msgs := make([][]byte, n)
	for i := range msgs {
		r := specRow(3, i, start.Add(time.Duration(i)*time.Second))
		if big {
			task := r["claimx_task_full"].(map[string]any)
			for k := 0; k < 60; k++ {
				switch k % 3 {
				case 0:
					task[fmt.Sprintf("text_%d", k)] = fmt.Sprintf("value %d of row %d", k, i)
				case 1:
					task[fmt.Sprintf("amount_%d", k)] = float64(i*k) + 0.25
				default:
					task[fmt.Sprintf("flag_%d", k)] = (i+k)%2 == 0
				}
			}
			var items []any
			for k := 0; k < 20; k++ {
				items = append(items, map[string]any{"item_id": float64(k), "name": fmt.Sprintf("item %d", k), "qty": float64(k % 4), "price": 9.99})
			}
			task["items"] = items
		}
		var err error
		if msgs[i], err = json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
	return msgs
}
