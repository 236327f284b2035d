package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"

	"kpipe/internal/delta"
)

// twinTable is the writer's table (AppendRows of its rows by column) with
// a twin that gets every batch as row maps (delta.Rows.Map) through
// Append, as the writer committed before it built rows by column.
type twinTable struct {
	table
	twin    *delta.Table
	t       *testing.T
	batches int
}

func (tt *twinTable) Append(ctx context.Context, rows delta.Rows, txns map[string]int64, ao appendOptions) (int64, []*delta.SchemaError, error) {
	maps := make([]map[string]any, rows.Len())
	for i := range maps {
		maps[i] = rows.Map(i)
	}
	v, rejected, err := tt.table.Append(ctx, rows, txns, ao)
	opts := delta.AppendOptions{SchemaEvolution: ao.evolve, RejectBadRows: true, Casts: ao.casts}
	for app, ver := range txns {
		opts.Txns = append(opts.Txns, delta.Txn{AppID: app, Version: ver})
	}
	sort.Slice(opts.Txns, func(i, j int) bool { return opts.Txns[i].AppID < opts.Txns[j].AppID })
	res, terr := tt.twin.Append(ctx, maps, opts)
	if fmt.Sprint(err) != fmt.Sprint(terr) {
		tt.t.Fatalf("batch %d: error by column %v, as maps %v", tt.batches, err, terr)
	}
	if fmt.Sprint(rejected) != fmt.Sprint(res.Rejected) {
		tt.t.Fatalf("batch %d: rejected by column %v, as maps %v", tt.batches, rejected, res.Rejected)
	}
	tt.batches++
	return v, rejected, err
}

// The rows the Delta writer commits by column are the rows it committed as
// maps: the same rejections and errors, schema, data file bytes, stats and
// partition values, over nested structs, nulls, absent values, schema
// evolution and rows the table rejects.
func TestDeltaWriterRowsEqualMaps(t *testing.T) {
	ctx := t.Context()
	dir, twinDir := t.TempDir(), t.TempDir()
	cfg := trackingWriterConfig("assignment_id", "task_name", "claimx_task_full", "project_data", "task_completed_at")
	cfg.SchemaEvolution = true
	deps := Deps{TableDefs: tableDefs, WorkerName: workerName}.withDefaults()
	inner, err := openDeltaTable(filepath.Join(dir, "delta", cfg.TableName), cfg.TableName, deps)
	if err != nil {
		t.Fatal(err)
	}
	twin, twinStore := createTable(t, twinDir, nil)
	tt := &twinTable{table: inner, twin: twin, t: t}
	w := newDeltaWriter(cfg, tt, deps)
	t.Cleanup(func() { _ = w.Close(t.Context()) })

	task := func(i int, extra map[string]any) map[string]any {
		m := map[string]any{"id": int64(i), "status": "open", "form": map[string]any{"name": fmt.Sprint("f", i%3), "fields": []any{map[string]any{"k": "a", "v": float64(i)}}}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	days := []string{"2026-01-10T12:00:00Z", "2026-01-11T08:30:00Z", "2026-02-01T00:00:00Z"}
	batches := [][]map[string]any{
		// The first rows infer the struct columns.
		func() (b []map[string]any) {
			for i := range 40 {
				b = append(b, map[string]any{"claimx_task_full": task(i, nil), "project_data": map[string]any{"p": fmt.Sprint("x", i)}, "assignment_id": int64(i), "event_timestamp": days[i%3]})
			}
			return b
		}(),
		// Nulls, absent values, a shared map, partitions by day.
		func() (b []map[string]any) {
			shared := task(7, nil)
			for i := range 60 {
				f := map[string]any{"event_timestamp": days[i%3], "task_name": nil}
				switch i % 4 {
				case 0:
					f["claimx_task_full"] = shared
				case 1:
					f["claimx_task_full"] = nil
					f["project_data"] = map[string]any{"p": nil}
				case 2:
					f["claimx_task_full"] = task(i, map[string]any{"form": nil})
					f["task_completed_at"] = "2026-01-12T00:00:00Z"
				default:
					f["assignment_id"] = nil
					f["task_name"] = fmt.Sprint("name ", i)
				}
				b = append(b, f)
			}
			return b
		}(),
		// A new nested field among rows that fit: evolution.
		func() (b []map[string]any) {
			for i := range 30 {
				b = append(b, map[string]any{"claimx_task_full": task(i, map[string]any{"added": fmt.Sprint(i)}), "event_timestamp": days[0]})
			}
			return b
		}(),
		// A type conflict inside a struct column: rejected at the commit.
		func() (b []map[string]any) {
			for i := range 30 {
				st := task(i, nil)
				if i%7 == 3 {
					st["status"] = float64(i)
				}
				b = append(b, map[string]any{"claimx_task_full": st, "event_timestamp": days[1]})
			}
			return b
		}(),
	}
	off := int64(0)
	for bi, b := range batches {
		var evs []*Event
		for _, extra := range b {
			evs = append(evs, trackingEvent(off, extra))
			off++
		}
		if _, err := w.HandleBatch(ctx, evs); err != nil {
			t.Fatal(err)
		}
		fr, err := w.Flush(ctx, []Mark{{Topic: inputTopic, Offset: off - 1}})
		if err != nil {
			t.Fatalf("batch %d: %v", bi, err)
		}
		if bi == 3 && len(fr.Rejected) == 0 {
			t.Fatalf("batch %d: no row rejected", bi)
		}
	}
	if tt.batches != len(batches) {
		t.Fatalf("%d batches reached the table, want %d", tt.batches, len(batches))
	}

	tbl, err := inner.(*deltaTable).table(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := twin.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.Schema().String() != b.Schema().String() {
		t.Fatalf("schema by column %s\nas maps %s", a.Schema(), b.Schema())
	}
	if !slices.ContainsFunc(a.Schema().Fields, func(f *delta.StructField) bool { return f.Name == "claimx_task_full" }) {
		t.Fatal("claimx_task_full did not join the schema")
	}
	// The snapshots list files in no set order: by what they hold.
	af, bf := a.Files(), b.Files()
	for _, fs := range [][]delta.AddFile{af, bf} {
		sort.Slice(fs, func(i, j int) bool {
			return fmt.Sprint(fs[i].PartitionValues, fs[i].Stats) < fmt.Sprint(fs[j].PartitionValues, fs[j].Stats)
		})
	}
	if len(af) != len(bf) || len(af) == 0 {
		t.Fatalf("%d files by column, %d as maps", len(af), len(bf))
	}
	for i := range af {
		if af[i].Stats != bf[i].Stats || !reflect.DeepEqual(af[i].PartitionValues, bf[i].PartitionValues) {
			t.Fatalf("file %d: stats or partition values differ:\n%s %v\n%s %v", i, af[i].Stats, af[i].PartitionValues, bf[i].Stats, bf[i].PartitionValues)
		}
		x, err := tbl.Storage().Read(ctx, af[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		y, err := twinStore.Read(ctx, bf[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(x, y) {
			t.Fatalf("file %d (%s): %d bytes by column, %d as maps, not the same", i, af[i].Path, len(x), len(y))
		}
	}
}
