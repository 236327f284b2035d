package delta

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"kpipe/internal/s3test"
)

// Environment of a writer process of TestS3WriterProcesses.
const (
	envWriter   = "KPIPE_TEST_S3_WRITER"
	envLocation = "KPIPE_TEST_S3_LOCATION"
	envCommits  = "KPIPE_TEST_S3_COMMITS"
)

// rowsPerCommit is the rows of each writer process's commit.
const rowsPerCommit = 2

// Three writer processes (this test binary, run again) × 50 commits on one
// S3 table, all through a fault proxy injecting 5xx answers (applied or
// not), resets before and after forwarding, closed connections, cut
// bodies and slow answers: the versions are contiguous, every commit's
// rows are in the table exactly once, and no data file is added twice. A
// writer retries what IsRetryable accepts and, when an Append fails after
// its commit may have landed, first asks the table's txn version whether it
// did, as the tracking worker does; anything else ends it with an error,
// and the test fails.
func TestS3WriterProcesses(t *testing.T) {
	const writers, commits = 3, 50
	srv := s3test.Start(t)
	srv.SetEnv(t)
	direct := newS3Store(t, srv, "procs", nil)
	createSpecTable(t, direct).Close(t.Context())

	px := srv.StartProxy(t)
	px.SlowBy = 200 * time.Millisecond
	px.SetRule(s3test.Rates(6, map[s3test.Fault]float64{
		s3test.Fault500: 0.02, s3test.Fault503: 0.03, s3test.Fault500After: 0.02,
		s3test.FaultResetBefore: 0.03, s3test.FaultResetAfter: 0.03,
		s3test.FaultCloseBefore: 0.02, s3test.FaultTruncate: 0.02, s3test.FaultSlow: 0.02,
	}))

	var wg sync.WaitGroup
	outs := make([]string, writers)
	errs := make([]error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestS3WriterProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), envWriter+"="+strconv.Itoa(w), envLocation+"="+px.URL("procs"), envCommits+"="+strconv.Itoa(commits))
			out, err := cmd.CombinedOutput()
			outs[w], errs[w] = string(out), err
		}()
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil || !strings.Contains(outs[w], "PASS") {
			t.Fatalf("writer %d: %v\n%s", w, err, outs[w])
		}
		if i := strings.Index(outs[w], "writer "); i >= 0 {
			line, _, _ := strings.Cut(outs[w][i:], "\n")
			t.Log(line)
		}
	}
	px.Heal()
	for _, f := range []s3test.Fault{s3test.Fault503, s3test.Fault500After, s3test.FaultResetBefore, s3test.FaultResetAfter} {
		if px.Injected(f) == 0 {
			t.Errorf("the proxy never injected %s in %d requests", f, px.Requests())
		}
	}
	t.Logf("%d requests through the proxy; injected: 500 %d, 503 %d, 500-after %d, reset-before %d, reset-after %d, close-before %d, truncate %d, slow %d",
		px.Requests(), px.Injected(s3test.Fault500), px.Injected(s3test.Fault503), px.Injected(s3test.Fault500After), px.Injected(s3test.FaultResetBefore),
		px.Injected(s3test.FaultResetAfter), px.Injected(s3test.FaultCloseBefore), px.Injected(s3test.FaultTruncate), px.Injected(s3test.FaultSlow))

	tb, err := Open(t.Context(), direct)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The SPEC table sets delta.autoOptimize.autoCompact: the writers'
	// auto-compactions commit too, under the same faults.
	optimizes := 0
	for v := int64(1); v <= snap.Version(); v++ {
		data, err := direct.Read(t.Context(), commitKey(v))
		if err != nil {
			t.Fatal(err)
		}
		acts, err := parseLogEntry(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acts {
			if a.CommitInfo != nil && a.CommitInfo["operation"] == "OPTIMIZE" {
				optimizes++
			}
		}
	}
	t.Logf("%d auto-compactions committed", optimizes)
	if snap.Version() != int64(writers*commits+optimizes) {
		t.Fatalf("version %d, want %d (one per commit, and %d auto-compactions)", snap.Version(), writers*commits+optimizes, optimizes)
	}
	l := mustList(t, tb)
	for v := int64(0); v <= snap.Version(); v++ {
		if _, ok := l.commits[v]; !ok {
			t.Fatalf("commit %d missing: versions not contiguous", v)
		}
	}
	for w := range writers {
		if v, _ := snap.TxnVersion(writerApp(w)); v != commits {
			t.Fatalf("writer %d txn version %d, want %d", w, v, commits)
		}
	}
	added := map[string]int64{}
	for v := int64(1); v <= snap.Version(); v++ {
		data, err := direct.Read(t.Context(), commitKey(v))
		if err != nil {
			t.Fatal(err)
		}
		acts, err := parseLogEntry(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acts {
			if a.Add == nil {
				continue
			}
			if prev, dup := added[a.Add.Path]; dup {
				t.Fatalf("file %s added at %d and %d", a.Add.Path, prev, v)
			}
			added[a.Add.Path] = v
		}
	}
	rows, err := ReadRows(t.Context(), direct, snap)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range rows {
		seen[r["event_id"].(string)]++
	}
	for w := range writers {
		for c := 1; c <= commits; c++ {
			for r := range rowsPerCommit {
				if id := writerEventID(w, c, r); seen[id] != 1 {
					t.Errorf("event %s: %d rows, want 1", id, seen[id])
				}
			}
		}
	}
	if len(rows) != writers*commits*rowsPerCommit {
		t.Fatalf("%d rows, want %d", len(rows), writers*commits*rowsPerCommit)
	}
}

func writerApp(w int) string { return fmt.Sprintf("writer-%d", w) }

func writerEventID(w, c, r int) string { return fmt.Sprintf("w%d-c%d-r%d", w, c, r) }

// TestS3WriterProcess is one writer process of TestS3WriterProcesses; it
// is skipped unless that test runs it.
func TestS3WriterProcess(t *testing.T) {
	ws := os.Getenv(envWriter)
	if ws == "" {
		t.Skip("a writer process of TestS3WriterProcesses")
	}
	w, _ := strconv.Atoi(ws)
	commits, _ := strconv.Atoi(os.Getenv(envCommits))
	store, err := OpenLocation(os.Getenv(envLocation))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// retry runs f until it succeeds, for as long as its errors are
	// retryable.
	var retried, landed int
	retry := func(what string, f func() error) {
		for attempt := 1; ; attempt++ {
			err := f()
			if err == nil {
				return
			}
			retried++
			if !IsRetryable(err) {
				t.Fatalf("writer %d: %s: not retryable: %v", w, what, err)
			}
			if attempt >= 200 {
				t.Fatalf("writer %d: %s: still failing after %d attempts: %v", w, what, attempt, err)
			}
			time.Sleep(time.Duration(min(attempt, 10)) * 20 * time.Millisecond)
		}
	}
	var tb *Table
	retry("opening the table", func() error { tb, err = Open(ctx, store); return err })
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	for c := 1; c <= commits; c++ {
		rows := make([]map[string]any, rowsPerCommit)
		for r := range rows {
			row := specRow(0, w*1000+c, ts)
			row["event_id"] = writerEventID(w, c, r)
			row["claimx_task_full"], row["original_event"], row["project_data"] = nil, nil, nil
			rows[r] = row
		}
		retry(fmt.Sprintf("commit %d", c), func() error {
			// Did an earlier attempt land after all?
			snap, err := tb.Snapshot(ctx)
			if err != nil {
				return err
			}
			if v, _ := snap.TxnVersion(writerApp(w)); v >= int64(c) {
				landed++
				return nil
			}
			_, err = tb.Append(ctx, rows, AppendOptions{Txns: []Txn{{AppID: writerApp(w), Version: int64(c)}}})
			return err
		})
	}
	_ = tb.Close(context.WithoutCancel(ctx))
	fmt.Printf("writer %d: %d calls retried, %d commits found landed after a failed Append\n", w, retried, landed)
}
