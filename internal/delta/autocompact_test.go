package delta

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAutoCompactLongRun appends hundreds of small commits over simulated
// days (event time moves on, no clock waits) with auto-compaction on, and
// checks after every commit that no partition holds more than MinFiles
// small files plus its compacted ones, and at the end that files approach
// the target size.
func TestAutoCompactLongRun(t *testing.T) {
	const (
		perDay   = 50 // commits per simulated day
		minFiles = 10
	)
	commits := 200
	if n, err := strconv.Atoi(os.Getenv("KPIPE_COMPACT_SOAK_COMMITS")); err == nil && n > 0 {
		commits = n // a soak: KPIPE_COMPACT_SOAK_COMMITS=5000
	}
	ctx := t.Context()
	// The target is about 200 rows' worth, from the size of a 100-row file.
	probe, _ := newSpecTable(t, WithAutoCompact(AutoCompact{Disable: true}))
	var prows []map[string]any
	for i := range 100 {
		prows = append(prows, optRow(fmt.Sprint("p", i), 10, i, "open", time.Unix(int64(i), 0)))
	}
	if _, err := probe.Append(ctx, prows, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	ps, _ := probe.Snapshot(ctx)
	hundred := ps.Files()[0].Size
	target := 2 * hundred
	var compactions atomic.Int64
	tb, store := newSpecTable(t, WithAutoCompact(AutoCompact{MinFiles: minFiles, TargetSize: target, Sync: true,
		OnCompact: func(r OptimizeResult, err error) {
			if err != nil {
				t.Errorf("compaction: %v", err)
			}
			compactions.Add(1)
		}}))
	rng := rand.New(rand.NewPCG(3, 4))
	n := 0
	maxFiles := 0
	for c := range commits {
		day := 10 + c/perDay
		var rows []map[string]any
		for range 5 + rng.IntN(6) {
			rows = append(rows, optRow(fmt.Sprintf("e%d", n), day, rng.IntN(500), "open", time.Unix(int64(n), 0)))
			n++
		}
		if _, err := tb.Append(ctx, rows, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
		snap, _ := tb.Snapshot(ctx)
		byDay := map[string][]AddFile{}
		for _, f := range snap.Files() {
			byDay[f.PartitionValues["day"]] = append(byDay[f.PartitionValues["day"]], f)
		}
		for d, files := range byDay {
			// What a pass would take stays below MinFiles; the small
			// files it leaves for later (each larger than the rest
			// together) are a few more.
			if k := len(smallFiles(files, target/2, true)); k >= minFiles {
				t.Fatalf("commit %d: day %s holds %d small files a pass takes, want fewer than %d", c, d, k, minFiles)
			}
			if k := len(smallFiles(files, target/2, false)); k >= minFiles+3 {
				t.Fatalf("commit %d: day %s holds %d small files, want fewer than %d", c, d, k, minFiles+3)
			}
		}
		for _, k := range filesPerDay(snap) {
			maxFiles = max(maxFiles, k)
		}
	}
	snap, _ := tb.Snapshot(ctx)
	bytes, rows, _ := snap.Totals()
	mean := bytes / int64(snap.NumFiles())
	// The days written to the end, without the last one (still filling).
	var doneBytes, doneFiles int64
	last := fmt.Sprint(10 + (commits-1)/perDay)
	for _, f := range snap.Files() {
		if f.PartitionValues["day"] != last {
			doneBytes += f.Size
			doneFiles++
		}
	}
	t.Logf("finished days: %d files, mean %d bytes (%.2f of the target)", doneFiles, doneBytes/doneFiles, float64(doneBytes)/float64(doneFiles)/float64(target))
	t.Logf("%d commits, %d rows, %d compactions: %d files, mean %d bytes (target %d, a 100-row file %d); at most %d files in a partition",
		commits, rows, compactions.Load(), snap.NumFiles(), mean, target, hundred, maxFiles)
	// Files of half the target or more are left alone (as Delta's
	// autoCompact.minFileSize), so a finished day's files sit between
	// half and all of the target, but for its last few commits' rows.
	if doneMean := doneBytes / doneFiles; doneMean < target*2/5 {
		t.Fatalf("finished days' mean file size %d, want at least 2/5 of the target %d", doneMean, target)
	}
	if rows != int64(n) || mean < target/4 || maxFiles > 2*minFiles {
		t.Fatalf("%d rows of %d, mean file %d bytes for a target of %d, %d files in a partition", rows, n, mean, target, maxFiles)
	}
	if got := tableRows(t, tb, store); len(got) != n {
		t.Fatalf("read %d rows, want %d", len(got), n)
	}
	var auto int
	hist, _ := tb.History(ctx, 0)
	for _, h := range hist {
		if h.Operation == "OPTIMIZE" {
			if p, _ := h.Info["operationParameters"].(map[string]any); p["auto"] != true {
				t.Fatalf("auto-compaction commit %d: operationParameters %v", h.Version, p)
			}
			auto++
		}
	}
	if int64(auto) != compactions.Load() || auto < commits/minFiles/2 {
		t.Fatalf("%d OPTIMIZE commits, %d compactions", auto, compactions.Load())
	}
}

// TestAutoCompactRewritesARowFewTimes appends many small commits to one
// partition whose files never reach half the target: each pass leaves out
// the compacted files larger than the new ones together, so a row is
// rewritten about log2(commits / MinFiles) times in all. Taking every
// small file in each pass rewrote every row of the partition again each
// time (quadratic: 21.5 rewrites a row here), which in kpipe bench
// --events 2000000 was 36% of the worker's CPU.
func TestAutoCompactRewritesARowFewTimes(t *testing.T) {
	const (
		minFiles = 4
		commits  = 128
		perFile  = 10
	)
	ctx := t.Context()
	var rewritten, passes int64
	tb, store := newSpecTable(t, WithAutoCompact(AutoCompact{MinFiles: minFiles, TargetSize: 1 << 30, Sync: true,
		OnCompact: func(r OptimizeResult, err error) {
			if err != nil {
				t.Errorf("compaction: %v", err)
			}
			rewritten += r.Rows
			passes++
		}}))
	n, maxFiles := 0, 0
	for range commits {
		var rows []map[string]any
		for range perFile {
			rows = append(rows, optRow(fmt.Sprintf("e%d", n), 10, n%500, "open", time.Unix(int64(n), 0)))
			n++
		}
		if _, err := tb.Append(ctx, rows, AppendOptions{SchemaEvolution: true}); err != nil {
			t.Fatal(err)
		}
		snap, _ := tb.Snapshot(ctx)
		maxFiles = max(maxFiles, snap.NumFiles())
	}
	snap, _ := tb.Snapshot(ctx)
	perRow := float64(rewritten) / float64(n)
	t.Logf("%d rows in %d commits: %d passes rewrote %d rows (%.1f a row); %d files now, at most %d", n, commits, passes, rewritten, perRow, snap.NumFiles(), maxFiles)
	// log2(128/4) = 5 levels; a level's file takes up to twice its share.
	if perRow > 7 || passes < commits/minFiles/2 {
		t.Fatalf("%d passes rewrote %.1f times a row, want at most 7", passes, perRow)
	}
	// Fewer than MinFiles new files, and a few of each size above them.
	if maxFiles > minFiles+2*5 {
		t.Fatalf("up to %d files in the partition", maxFiles)
	}
	if got := tableRows(t, tb, store); len(got) != n {
		t.Fatalf("read %d rows, want %d", len(got), n)
	}
}

// TestAutoCompactRacesAppends runs writers on their own Tables over one
// store, each auto-compacting in the background, plus explicit OPTIMIZEs,
// and reads back every row exactly once.
func TestAutoCompactRacesAppends(t *testing.T) {
	const writers, commits = 3, 25
	ctx := t.Context()
	local, err := NewLocalStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	first := createSpecTable(t, local)
	// The first commit evolves the schema; the writers' rows then fit it.
	if _, err := first.Append(ctx, []map[string]any{optRow("first", 10, 0, "open", time.Unix(0, 0))}, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	var compactions, failures atomic.Int64
	open := func() *Table {
		tb, err := Open(ctx, local, WithAutoCompact(AutoCompact{MinFiles: 4, TargetSize: 1 << 20, OnCompact: func(r OptimizeResult, err error) {
			if err != nil {
				failures.Add(1)
				return
			}
			compactions.Add(1)
		}}))
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	stop := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tb := open()
			defer tb.Close(ctx)
			for c := range commits {
				rows := []map[string]any{
					optRow(fmt.Sprintf("w%d-%d-a", w, c), 10+c%2, c, "open", time.Unix(int64(c), 0)),
					optRow(fmt.Sprintf("w%d-%d-b", w, c), 10+c%2, c, "done", time.Unix(int64(c), 0)),
				}
				if _, err := tb.Append(ctx, rows, AppendOptions{SchemaEvolution: true}); err != nil {
					errs <- fmt.Errorf("writer %d commit %d: %w", w, c, err)
					return
				}
			}
		}()
	}
	var optimized atomic.Int64
	var owg sync.WaitGroup
	owg.Add(1)
	go func() {
		defer owg.Done()
		tb := open()
		defer tb.Close(ctx)
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := tb.Optimize(ctx, OptimizeOptions{MinFiles: 2})
			var ce *ConflictError
			if err != nil && !errors.As(err, &ce) {
				errs <- fmt.Errorf("optimize: %w", err)
				return
			}
			if res.Version >= 0 {
				optimized.Add(1)
			}
		}
	}()
	wg.Wait()
	close(stop)
	owg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tb := open()
	defer tb.Close(ctx)
	got := tableRows(t, tb, local)
	if len(got) != writers*commits*2+1 {
		t.Fatalf("read %d rows, want %d", len(got), writers*commits*2+1)
	}
	for w := range writers {
		for c := range commits {
			for _, s := range []string{"a", "b"} {
				if _, ok := got[fmt.Sprintf("w%d-%d-%s", w, c, s)]; !ok {
					t.Fatalf("row w%d-%d-%s lost", w, c, s)
				}
			}
		}
	}
	snap, _ := tb.Snapshot(ctx)
	t.Logf("%d commits, %d explicit OPTIMIZEs, %d auto-compactions (%d gave way), %d files left", snap.Version(), optimized.Load(), compactions.Load(), failures.Load(), snap.NumFiles())
	if optimized.Load()+compactions.Load() == 0 {
		t.Fatal("nothing was compacted")
	}
}

// blockingStorage blocks reads of data files (keys outside _delta_log)
// once armed, until the reader's context ends.
type blockingStorage struct {
	Storage
	armed   atomic.Bool
	blocked chan struct{} // closed when a read first blocks
	once    sync.Once
	ended   atomic.Pointer[error]
}

func (s *blockingStorage) Read(ctx context.Context, key string) ([]byte, error) {
	if s.armed.Load() && !strings.HasPrefix(key, "_delta_log/") {
		s.once.Do(func() { close(s.blocked) })
		<-ctx.Done()
		err := ctx.Err()
		s.ended.Store(&err)
		return nil, err
	}
	return s.Storage.Read(ctx, key)
}

// A background compaction that is stuck does not hold appends back, and
// Close cancels it.
func TestAutoCompactNeverBlocksAppendsAndStopsOnClose(t *testing.T) {
	ctx := t.Context()
	local, err := NewLocalStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bs := &blockingStorage{Storage: local, blocked: make(chan struct{})}
	tb := createSpecTable(t, bs, WithAutoCompact(AutoCompact{MinFiles: 3, TargetSize: 1 << 20}))
	if _, err := tb.Append(ctx, []map[string]any{optRow("e0", 10, 0, "open", time.Unix(0, 0))}, AppendOptions{SchemaEvolution: true}); err != nil {
		t.Fatal(err)
	}
	bs.armed.Store(true)
	for i := 1; i < 3; i++ {
		if _, err := tb.Append(ctx, []map[string]any{optRow(fmt.Sprint("e", i), 10, i, "open", time.Unix(int64(i), 0))}, AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	<-bs.blocked // the compaction is reading, and stays stuck
	for i := 3; i < 10; i++ {
		if _, err := tb.Append(ctx, []map[string]any{optRow(fmt.Sprint("e", i), 10, i, "open", time.Unix(int64(i), 0))}, AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := tb.Close(cctx); err != nil {
		t.Fatalf("Close: %v (the compaction was not cancelled)", err)
	}
	if e := bs.ended.Load(); e == nil || !errors.Is(*e, context.Canceled) {
		t.Fatalf("the compaction's read ended with %v, want context.Canceled", e)
	}
	bs.armed.Store(false)
	tb2, err := Open(ctx, local)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := tb2.Snapshot(ctx)
	if snap.NumFiles() != 10 || len(tableRows(t, tb2, local)) != 10 {
		t.Fatalf("%d files after Close, want the 10 appended", snap.NumFiles())
	}
	// A closed Table starts no compaction.
	if _, err := tb.Append(ctx, []map[string]any{optRow("late", 10, 99, "open", time.Unix(99, 0))}, AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if s, _ := tb.Snapshot(ctx); s.NumFiles() != 11 {
		t.Fatalf("%d files, want 11", s.NumFiles())
	}
}
