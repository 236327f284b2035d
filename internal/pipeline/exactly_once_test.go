package pipeline

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"kpipe/internal/sim"
)

// TestWorkerExactlyOnceUnderKills kills the tracking worker at random points
// while a stream is being produced: while rows are buffered, after a
// commit's data files are written but before the log entry, and after the
// table commit but before the offset commit. A kill abandons everything (no
// flush, no commit, no leave beyond the client closing). After the last
// kill a worker runs to the end: the table must hold every manifest event of
// template 32513 exactly once. KPIPE_SOAK_KILLS sets the number of kills
// (default 20).
func TestWorkerExactlyOnceUnderKills(t *testing.T) {
	kills := 20
	if s := os.Getenv("KPIPE_SOAK_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("KPIPE_SOAK_KILLS=%q: %v", s, err)
		}
		kills = n
	}
	if testing.Short() {
		kills = min(kills, 5)
	}
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 3, Projects: 400})
	want := e.entries()
	t.Logf("%d events of template %d, %d kills", len(want), templateID, kills)
	dir := t.TempDir()

	// The stream: produced in chunks every 50 ms while workers come and go,
	// paced to outlast the kills (each takes a few hundred milliseconds).
	streamDone := make(chan struct{})
	duration := time.Duration(kills)*400*time.Millisecond + time.Second
	chunk := max(1, len(want)*50/int(duration.Milliseconds()))
	go func() {
		defer close(streamDone)
		for i := 0; i < len(want); i += chunk {
			e.produceTracking(ctx, want[i:min(i+chunk, len(want))])
			time.Sleep(50 * time.Millisecond)
		}
	}()

	tweak := func(c *DeltaWriterConfig) {
		c.FlushRows = 150
		c.FlushInterval = 0.1
		// The txn versions alone must keep the table exactly-once: dedupe
		// would hide a row they let through twice.
		c.Dedupe = nil
	}
	rng := rand.New(rand.NewPCG(7, uint64(kills)))
	points := []string{"buffering", "after_data_files", "after_table_commit"}
	killed := map[string]int{}
	for k := 0; k < kills; k++ {
		point := points[k%len(points)]
		countdown := int32(1 + rng.IntN(4))
		var n atomic.Int32
		kill := func() error {
			if n.Add(1) == countdown {
				return ErrKilled
			}
			return nil
		}
		s := deltaSinkTweaked(t, dir, tweak)
		var hooks Hooks
		deps := s.deps
		switch point {
		case "buffering":
			hooks.AfterBatch = func(int) error { return kill() }
		case "after_data_files":
			s.deps = func(d Deps) Deps { d = deps(d); d.AfterDataFiles = kill; return d }
		case "after_table_commit":
			hooks.AfterTableCommit = func(int64) error { return kill() }
		}
		w := e.newWorker(t, s, WithHooks(hooks))
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		err := w.Run(rctx)
		cancel()
		t.Logf("run %d: %s countdown %d reached %d in %v: %v (rows %d)", k, point, countdown, n.Load(), time.Since(start), err, len(s.rows()))
		switch {
		case errors.Is(err, ErrKilled):
			killed[point]++
		case err != nil:
			t.Fatalf("run %d: %v", k, err)
		}
	}
	t.Logf("kills by point: %v", killed)
	if kills >= 3 {
		for _, p := range points {
			if killed[p] == 0 {
				t.Errorf("no kill happened at %s", p)
			}
		}
	}
	<-streamDone
	s := deltaSinkTweaked(t, dir, tweak)
	w := e.newWorker(t, s)
	stop := runWorker(t, ctx, w)
	waitFor(t, 60*time.Second, "every row", func() bool { return len(s.rows()) >= len(want) })
	time.Sleep(300 * time.Millisecond) // let a duplicate, if any, land
	if err := stop(); err != nil {
		t.Fatalf("final run: %v", err)
	}
	checkTimeline(t, s.rows(), want)
}
