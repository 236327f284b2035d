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
// structs, the size of a production task. Only Append is timed.
func BenchmarkAppendRaw(b *testing.B) {
	for _, c := range []struct {
		store string
		big   bool
		lazy  bool
	}{
		{"mem", false, false}, {"mem", false, true},
		{"mem", true, false}, {"mem", true, true},
		{"local", true, false}, {"local", true, true},
	} {
		shape := "spec"
		if c.big {
			shape = "big"
		}
		b.Run(fmt.Sprintf("store=%s/shape=%s/lazy=%v", c.store, shape, c.lazy), func(b *testing.B) {
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
			rows := benchJSONRows(b, 10000, c.big, c.lazy)
			if _, err := tb.Append(b.Context(), rows, AppendOptions{SchemaEvolution: true}); err != nil {
				b.Fatal(err)
			}
			falls := rawFallbacks.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := tb.Append(b.Context(), rows, AppendOptions{SchemaEvolution: true}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(rows)*b.N)/b.Elapsed().Seconds(), "rows/s")
			if rawFallbacks.Load() != falls {
				b.Fatal("the RawObjects were materialized: the fast path was not taken")
			}
		})
	}
}

// benchJSONRows are n SPEC rows of one day as JSON messages decoded by
// jsonx, their nested objects left raw when lazy.
func benchJSONRows(b *testing.B, n int, big, lazy bool) []map[string]any {
	start := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	opts := jsonx.DecodeOptions{}
	if lazy {
		opts.Lazy = map[string]bool{"claimx_task_full": true, "original_event": true, "project_data": true}
	}
	rows := make([]map[string]any, n)
	for i := range rows {
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
		msg, err := json.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		if rows[i], err = jsonx.DecodeObjectOpts(msg, 0, opts); err != nil {
			b.Fatal(err)
		}
	}
	return rows
}
