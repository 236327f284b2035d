package delta

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkAppend measures Append of SPEC-shaped rows (with nested structs)
// into the SPEC table; rows/s and MB/s (of Parquet written) are reported.
// Rows are one second apart from 23:00, so 10,000 of them span two days
// (partitions); the days=1 subcases start at midnight, so all rows fall in
// one partition, the common shape of a production flush.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct {
		store  string
		n      int
		oneDay bool
	}{
		{"local", 100, false}, {"local", 1000, false}, {"local", 10000, false},
		{"mem", 100, false}, {"mem", 10000, false},
		{"local", 10000, true}, {"mem", 10000, true},
	} {
		n := c.n
		name := fmt.Sprintf("store=%s/rows=%d", c.store, n)
		start := time.Date(2026, 1, 10, 23, 0, 0, 0, time.UTC)
		if c.oneDay {
			name += "/days=1"
			start = time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
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
			rows := make([]map[string]any, n)
			for i := range rows {
				rows[i] = specRow(3, i, start.Add(time.Duration(i)*time.Second))
			}
			// First append evolves the schema; measure steady state.
			if _, err := tb.Append(b.Context(), rows, AppendOptions{SchemaEvolution: true}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var bytes int64
			for i := 0; i < b.N; i++ {
				res, err := tb.Append(b.Context(), rows, AppendOptions{SchemaEvolution: true})
				if err != nil {
					b.Fatal(err)
				}
				bytes += res.Bytes
			}
			el := b.Elapsed().Seconds()
			b.ReportMetric(float64(n*b.N)/el, "rows/s")
			b.ReportMetric(float64(bytes)/el/1e6, "MB/s")
		})
	}
}
