package delta

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// optRow is a SPEC row with a given task id and status, on day day of
// January 2026.
func optRow(id string, day, taskID int, status string, ts time.Time) map[string]any {
	r := specRow(1, taskID, ts)
	r["event_id"] = id
	r["task_id"] = taskID
	r["task_status"] = status
	r["year"], r["month"], r["day"] = 2026, 1, day
	r["event_timestamp"] = time.Date(2026, 1, day, 12, 0, 0, 0, time.UTC).Add(time.Duration(ts.Unix()%3600) * time.Second)
	return r
}

// tableRows reads the table's rows by event_id, failing on a duplicate.
func tableRows(t *testing.T, tb *Table, store Storage) map[string]map[string]any {
	t.Helper()
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, r := range rows {
		id := r["event_id"].(string)
		if _, dup := out[id]; dup {
			t.Fatalf("event %s read twice", id)
		}
		out[id] = r
	}
	return out
}

func sameRows(t *testing.T, got, want map[string]map[string]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d", len(got), len(want))
	}
	for id, w := range want {
		if g, ok := got[id]; !ok {
			t.Fatalf("row %s lost", id)
		} else if !reflect.DeepEqual(g, w) {
			t.Fatalf("row %s changed:\ngot  %v\nwant %v", id, g, w)
		}
	}
}

// filesPerDay counts the active files of each day partition.
func filesPerDay(snap *Snapshot) map[string]int {
	out := map[string]int{}
	for _, f := range snap.Files() {
		out[f.PartitionValues["day"]]++
	}
	return out
}

func lastCommit(t *testing.T, tb *Table, store Storage) []action {
	t.Helper()
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	data, err := store.Read(t.Context(), commitKey(snap.Version()))
	if err != nil {
		t.Fatal(err)
	}
	acts, err := parseLogEntry(data)
	if err != nil {
		t.Fatal(err)
	}
	return acts
}

func TestOptimizeBinPacking(t *testing.T) {
	tb, store := newSpecTable(t, WithAutoCompact(AutoCompact{Disable: true}))
	ctx := t.Context()
	n := 0
	for c := range 12 {
		var rows []map[string]any
		for i := range 5 {
			rows = append(rows, optRow(fmt.Sprintf("e%d", n), 10+(c+i)%2, n, "open", time.Unix(int64(n), 0)))
			n++
		}
		if _, err := tb.Append(ctx, rows, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
	before := tableRows(t, tb, store)
	snap, _ := tb.Snapshot(ctx)
	if got := filesPerDay(snap); got["10"] != 12 || got["11"] != 12 {
		t.Fatalf("files per day before: %v", got)
	}
	dry, err := tb.Optimize(ctx, OptimizeOptions{DryRun: true})
	if err != nil || dry.Version != -1 || dry.RemovedFiles != 24 || dry.AddedFiles != 2 {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	if s, _ := tb.Snapshot(ctx); s.Version() != snap.Version() || s.NumFiles() != 24 {
		t.Fatalf("dry run changed the table: version %d, %d files", s.Version(), s.NumFiles())
	}
	res, err := tb.Optimize(ctx, OptimizeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != snap.Version()+1 || res.RemovedFiles != 24 || res.AddedFiles != 2 || res.Rows != 60 || res.Partitions != 2 || res.Attempts != 1 {
		t.Fatalf("result %+v", res)
	}
	after, _ := tb.Snapshot(ctx)
	if got := filesPerDay(after); got["10"] != 1 || got["11"] != 1 {
		t.Fatalf("files per day after: %v", got)
	}
	sameRows(t, tableRows(t, tb, store), before)

	acts := lastCommit(t, tb, store)
	var removes, adds int
	for _, a := range acts {
		switch {
		case a.CommitInfo != nil:
			ci := a.CommitInfo
			params, _ := ci["operationParameters"].(map[string]any)
			m, _ := ci["operationMetrics"].(map[string]any)
			if ci["operation"] != "OPTIMIZE" || params["predicate"] != "[]" || params["zOrderBy"] != "[]" || params["auto"] != false {
				t.Fatalf("commitInfo %v", ci)
			}
			for _, k := range []string{"numRemovedFiles", "numAddedFiles", "numRemovedBytes", "numAddedBytes", "minFileSize", "maxFileSize", "avgFileSize", "p50FileSize"} {
				if _, ok := m[k]; !ok {
					t.Fatalf("operationMetrics lacks %s: %v", k, m)
				}
			}
			if m["numRemovedFiles"] != "24" || m["numAddedFiles"] != "2" || m["numRemovedBytes"] != fmt.Sprint(res.RemovedBytes) || m["numAddedBytes"] != fmt.Sprint(res.AddedBytes) {
				t.Fatalf("operationMetrics %v, result %+v", m, res)
			}
		case a.Remove != nil:
			removes++
			if a.Remove.DataChange || a.Remove.DeletionTimestamp == nil || a.Remove.Size == nil || a.Remove.PartitionValues["day"] == "" {
				t.Fatalf("remove %+v", a.Remove)
			}
		case a.Add != nil:
			adds++
			if n, ok := a.Add.NumRecords(); a.Add.DataChange || !ok || n != 30 {
				t.Fatalf("add %+v", a.Add)
			}
		}
	}
	if removes != 24 || adds != 2 {
		t.Fatalf("%d removes, %d adds", removes, adds)
	}
	hist, err := tb.History(ctx, 1)
	if err != nil || hist[0].Operation != "OPTIMIZE" {
		t.Fatalf("history %v, %v", hist, err)
	}

	// Nothing left to do: no commit.
	again, err := tb.Optimize(ctx, OptimizeOptions{})
	if err != nil || again.Version != -1 || again.RemovedFiles != 0 {
		t.Fatalf("second optimize: %+v, %v", again, err)
	}
	// A table opened afresh reads the same.
	tb2, err := Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, tableRows(t, tb2, store), before)
}

func TestOptimizeTargetSizeBins(t *testing.T) {
	tb, store := newSpecTable(t, WithAutoCompact(AutoCompact{Disable: true}))
	ctx := t.Context()
	for c := range 20 {
		var rows []map[string]any
		for i := range 4 {
			rows = append(rows, optRow(fmt.Sprintf("e%d-%d", c, i), 10, c*4+i, "open", time.Unix(int64(c), 0)))
		}
		if _, err := tb.Append(ctx, rows, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
	before := tableRows(t, tb, store)
	snap, _ := tb.Snapshot(ctx)
	size := snap.Files()[0].Size
	// Bins of at most 5 files' bytes.
	res, err := tb.Optimize(ctx, OptimizeOptions{TargetSize: 5*size + size/2})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := tb.Snapshot(ctx)
	if after.NumFiles() < 4 || after.NumFiles() > 6 || res.AddedFiles != after.NumFiles() {
		t.Fatalf("got %d files (%+v) from 20 of %d bytes with a target of 5.5 files", after.NumFiles(), res, size)
	}
	sameRows(t, tableRows(t, tb, store), before)
}

func TestOptimizeWhere(t *testing.T) {
	tb, store := newSpecTable(t, WithAutoCompact(AutoCompact{Disable: true}))
	ctx := t.Context()
	for c := range 6 {
		var rows []map[string]any
		for d := 10; d <= 12; d++ {
			rows = append(rows, optRow(fmt.Sprintf("e%d-%d", c, d), d, c, "open", time.Unix(int64(c), 0)))
		}
		if _, err := tb.Append(ctx, rows, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
	before := tableRows(t, tb, store)
	snap, _ := tb.Snapshot(ctx)
	md := snap.Metadata()
	for _, bad := range []struct{ where, want string }{
		{"task_status = 'open'", "partition columns only"},
		{"nosuch = 1", `unknown column "nosuch"`},
		{"day = 'x'", "not a integer value"},
		{"day = ", "want a literal"},
		{"day = 1 AND", "want a column name"},
		{"(day = 1", "want ')'"},
	} {
		p, err := ParsePredicate(md.Schema, md.PartitionColumns, bad.where)
		if err == nil {
			_, err = tb.Optimize(ctx, OptimizeOptions{Where: p})
		}
		if !errors.Is(err, ErrPredicate) || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("%q: got %v, want ErrPredicate saying %q", bad.where, err, bad.want)
		}
	}
	for _, bad := range []struct {
		cols []string
		want string
	}{{[]string{"day"}, "is a partition column"}, {[]string{"nosuch"}, "not in the table"}, {[]string{"task_id", "task_id"}, "twice"}, {[]string{"claimx_task_full"}, "no min/max statistics"}} {
		if _, err := tb.Optimize(ctx, OptimizeOptions{ZOrderBy: bad.cols}); !errors.Is(err, ErrPredicate) || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("zorder %v: got %v, want %q", bad.cols, err, bad.want)
		}
	}
	p, err := ParsePredicate(md.Schema, md.PartitionColumns, "year = 2026 AND (day = 10 OR day > 11) AND NOT day IN (12)")
	if err != nil {
		t.Fatal(err)
	}
	res, err := tb.Optimize(ctx, OptimizeOptions{Where: p})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := tb.Snapshot(ctx)
	if got := filesPerDay(after); got["10"] != 1 || got["11"] != 6 || got["12"] != 6 || res.FilesConsidered != 6 {
		t.Fatalf("files per day %v, result %+v", got, res)
	}
	sameRows(t, tableRows(t, tb, store), before)
	acts := lastCommit(t, tb, store)
	if params := acts[0].CommitInfo["operationParameters"].(map[string]any); params["predicate"] != `["year = 2026 AND (day = 10 OR day > 11) AND NOT day IN (12)"]` {
		t.Fatalf("operationParameters %v", params)
	}
}

func TestPredicateStats(t *testing.T) {
	s, err := ParseSchema(`{"type":"struct","fields":[{"name":"a","type":"long","nullable":true,"metadata":{}},{"name":"s","type":"string","nullable":true,"metadata":{}},{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},{"name":"p","type":"integer","nullable":true,"metadata":{}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	f := AddFile{PartitionValues: map[string]string{"p": "3"},
		Stats: `{"numRecords":10,"minValues":{"a":5,"s":"b","ts":"2026-01-01T00:00:00.000Z"},"maxValues":{"a":9,"s":"d","ts":"2026-01-01T00:00:01.000Z"},"nullCount":{"a":0,"s":2,"ts":0}}`}
	allNull := AddFile{Stats: `{"numRecords":3,"minValues":{},"maxValues":{},"nullCount":{"a":3}}`}
	noStats := AddFile{}
	for _, c := range []struct {
		pred                   string
		file, allNull, noStats bool
	}{
		{"a = 5", true, false, true},
		{"a = 4", false, false, true},
		{"a IN (1, 10)", false, false, true},
		{"a IN (1, 7)", true, false, true},
		{"a < 5", false, false, true},
		{"a <= 5", true, false, true},
		{"a > 9", false, false, true},
		{"a >= 9", true, false, true},
		{"a <> 5", true, false, true},
		{"NOT a > 4", false, false, true},
		{"a IS NULL", false, true, true},
		{"a IS NOT NULL", true, false, true},
		{"s IS NULL", true, true, true},
		{"s = 'e' OR a = 6", true, true, true}, // no stats of s in allNull
		{"s = 'c' AND a = 10", false, false, true},
		{"a = NULL", false, false, false},
		{"p = 3", true, false, false},
		{"p <> 3", false, false, false},
		{"p IS NULL", false, true, true},
		{"ts > '2026-01-01T00:00:01.0004Z'", true, true, true}, // max truncated to ms
		{"ts > '2026-01-01T00:00:01.001Z'", false, true, true},
	} {
		p, err := ParsePredicate(s, []string{"p"}, c.pred)
		if err != nil {
			t.Fatalf("%s: %v", c.pred, err)
		}
		if got := [3]bool{p.MayMatch(f), p.MayMatch(allNull), p.MayMatch(noStats)}; got != [3]bool{c.file, c.allNull, c.noStats} {
			t.Errorf("%s: MayMatch file, all-null, no-stats = %v, want %v", c.pred, got, [3]bool{c.file, c.allNull, c.noStats})
		}
	}
}

// zorderTable appends commits of rows with random task ids and statuses
// to one partition.
func zorderTable(t *testing.T, tb *Table, commits, rowsPer int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []string{"assigned", "in_progress", "completed", "cancelled", "on_hold", "new"}
	n := 0
	for range commits {
		var rows []map[string]any
		for range rowsPer {
			rows = append(rows, optRow(fmt.Sprintf("e%d", n), 10, rng.IntN(500), statuses[rng.IntN(len(statuses))], time.Unix(int64(n), 0)))
			n++
		}
		if _, err := tb.Append(t.Context(), rows, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// filesToRead counts the files the predicate cannot skip by statistics,
// on average over the first 100 (task_id, task_status) pairs the table
// holds (by event id).
func filesToRead(t *testing.T, snap *Snapshot, rows map[string]map[string]any) float64 {
	t.Helper()
	md := snap.Metadata()
	pairs := map[string]bool{}
	total, queries := 0, 0
	for _, id := range slices.Sorted(maps.Keys(rows)) {
		if queries == 100 {
			break
		}
		r := rows[id]
		q := fmt.Sprintf("task_id = %d AND task_status = '%s'", r["task_id"], r["task_status"])
		if pairs[q] {
			continue
		}
		pairs[q] = true
		p, err := ParsePredicate(md.Schema, md.PartitionColumns, q)
		if err != nil {
			t.Fatal(err)
		}
		kept := p.Prune(snap.Files())
		if len(kept) == 0 {
			t.Fatalf("%s: pruning skipped every file, but a row matches", q)
		}
		total += len(kept)
		queries++
	}
	return float64(total) / float64(queries)
}

func TestOptimizeZOrderPrunesFiles(t *testing.T) {
	tb, store := newSpecTable(t, WithAutoCompact(AutoCompact{Disable: true}))
	ctx := t.Context()
	zorderTable(t, tb, 40, 50)
	before := tableRows(t, tb, store)
	snap, _ := tb.Snapshot(ctx)
	readBefore := filesToRead(t, snap, before)
	totalBytes, _, _ := snap.Totals()

	res, err := tb.Optimize(ctx, OptimizeOptions{ZOrderBy: []string{"task_id", "task_status"}, TargetSize: totalBytes / 16})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := tb.Snapshot(ctx)
	readAfter := filesToRead(t, after, before)
	t.Logf("task_id = X AND task_status = Y: %.2f of %d files read before Z-order, %.2f of %d after", readBefore, snap.NumFiles(), readAfter, after.NumFiles())
	if res.AddedFiles < 8 || readAfter > readBefore/4 {
		t.Fatalf("Z-order wrote %d files; files read %.2f before, %.2f after: want a quarter or fewer", res.AddedFiles, readBefore, readAfter)
	}
	sameRows(t, tableRows(t, tb, store), before)
	acts := lastCommit(t, tb, store)
	if params := acts[0].CommitInfo["operationParameters"].(map[string]any); params["zOrderBy"] != `["task_id","task_status"]` {
		t.Fatalf("operationParameters %v", params)
	}
}

func TestZOrderKeys(t *testing.T) {
	// Two columns of 4 distinct values: the Z-curve visits the 2×2 blocks
	// in order, so the first four keys are the block of the two lowest
	// values of each.
	var rows []map[string]any
	for x := range 4 {
		for y := range 4 {
			rows = append(rows, map[string]any{"x": int64(x), "y": fmt.Sprint(y)})
		}
	}
	rows = append(rows, map[string]any{"x": nil, "y": nil})
	keys := zorderKeys(rows, []string{"x", "y"})
	if keys[16][0] != 0 {
		t.Fatalf("nulls first: key %x", keys[16])
	}
	less := func(a, b int) bool { return keys[a][0] < keys[b][0] }
	// (0,0) < (0,1) < (1,0) < (1,1) < (0,2)
	order := []int{0, 1, 4, 5, 2}
	for i := 1; i < len(order); i++ {
		if !less(order[i-1], order[i]) {
			t.Fatalf("row %d not before row %d: %x, %x", order[i-1], order[i], keys[order[i-1]], keys[order[i]])
		}
	}
}

// raceStorage runs fn once, before the first commit of an OPTIMIZE
// reaches the store: a commit that lands between its plan and its commit.
type raceStorage struct {
	Storage
	once sync.Once
	fn   func()
}

func (s *raceStorage) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if strings.Contains(string(data), `"OPTIMIZE"`) {
		s.once.Do(s.fn)
	}
	return s.Storage.PutIfAbsent(ctx, key, data)
}

func TestOptimizeRaces(t *testing.T) {
	setup := func(t *testing.T) (*Table, Storage, *raceStorage, map[string]map[string]any) {
		local, err := NewLocalStorage(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		rs := &raceStorage{Storage: local}
		tb := createSpecTable(t, rs, WithAutoCompact(AutoCompact{Disable: true}))
		for c := range 5 {
			if _, err := tb.Append(t.Context(), []map[string]any{optRow(fmt.Sprint("e", c), 10, c, "open", time.Unix(int64(c), 0))}, AppendOptions{SchemaEvolution: true}); err != nil {
				t.Fatal(err)
			}
		}
		return tb, local, rs, tableRows(t, tb, local)
	}
	t.Run("append between plan and commit", func(t *testing.T) {
		tb, local, rs, rows := setup(t)
		other, err := Open(t.Context(), local)
		if err != nil {
			t.Fatal(err)
		}
		extra := optRow("late", 10, 99, "open", time.Unix(99, 0))
		rs.fn = func() {
			if _, err := other.Append(t.Context(), []map[string]any{extra}, AppendOptions{SchemaEvolution: true}); err != nil {
				t.Error(err)
			}
		}
		res, err := tb.Optimize(t.Context(), OptimizeOptions{})
		if err != nil || res.Attempts != 1 || res.Version != res.ReadVersion+2 {
			t.Fatalf("got %+v, %v: want a commit after the append, at the first attempt", res, err)
		}
		rows["late"] = tableRows(t, other, local)["late"]
		sameRows(t, tableRows(t, tb, local), rows)
		snap, _ := tb.Snapshot(t.Context())
		if snap.NumFiles() != 2 {
			t.Fatalf("%d files, want the compacted one and the late append's", snap.NumFiles())
		}
	})
	t.Run("concurrent optimize removes the same files", func(t *testing.T) {
		tb, local, rs, rows := setup(t)
		other, err := Open(t.Context(), local)
		if err != nil {
			t.Fatal(err)
		}
		rs.fn = func() {
			if res, err := other.Optimize(t.Context(), OptimizeOptions{}); err != nil || res.Version < 0 {
				t.Errorf("the other optimize: %+v, %v", res, err)
			}
		}
		res, err := tb.Optimize(t.Context(), OptimizeOptions{})
		if err != nil || res.Attempts != 2 || res.Version != -1 {
			t.Fatalf("got %+v, %v: want it to give way, then find nothing to do", res, err)
		}
		sameRows(t, tableRows(t, tb, local), rows)
		// The files of the attempt that gave way are gone.
		snap, _ := tb.Snapshot(t.Context())
		list, err := local.List(t.Context(), "year=2026/", "")
		if err != nil {
			t.Fatal(err)
		}
		live := map[string]bool{}
		for _, f := range snap.Files() {
			live[StorageKey(f.Path)] = true
		}
		for _, tomb := range snap.Tombstones() {
			live[StorageKey(tomb.Path)] = true
		}
		for _, fi := range list {
			if !live[fi.Key] {
				t.Fatalf("orphan %s left by the optimize that gave way", fi.Key)
			}
		}
		// MaxAttempts 1 reports the conflict.
		tb3, _, rs3, _ := setup(t)
		other3, _ := Open(t.Context(), rs3.Storage)
		rs3.fn = func() { _, _ = other3.Optimize(t.Context(), OptimizeOptions{}) }
		var ce *ConflictError
		if _, err := tb3.Optimize(t.Context(), OptimizeOptions{MaxAttempts: 1}); !errors.As(err, &ce) || !IsRetryable(err) {
			t.Fatalf("got %v, want a *ConflictError", err)
		}
	})
}

func TestOptimizeWriteOneFilePerPartition(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	ctx := t.Context()
	var rows []map[string]any
	for i := range 3 * DefaultMinRowsPerFile {
		rows = append(rows, optRow(fmt.Sprint("e", i), 10, i, "open", time.Unix(int64(i), 0)))
	}
	def, err := LoadTableDef(specTableDef)
	if err != nil {
		t.Fatal(err)
	}
	for _, ow := range []string{"true", "false"} {
		def.Properties[propOptimizeWrite] = ow
		store, err := NewLocalStorage(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		tb, err := Create(ctx, store, def, WithAutoCompact(AutoCompact{Disable: true}))
		if err != nil {
			t.Fatal(err)
		}
		res, err := tb.Append(ctx, rows, AppendOptions{SchemaEvolution: true})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"true": 1, "false": 3}[ow]; res.Files != want {
			t.Fatalf("optimizeWrite %s: %d files for one partition, want %d", ow, res.Files, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"134217728": 128 << 20, "128mb": 128 << 20, "64MiB": 64 << 20, "1g": 1 << 30, "1.5k": 1536, " 10 KB ": 10240} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "10 parsecs", "-1", "1e30"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): want an error", in)
		}
	}
}
