package pipeline

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"kpipe/internal/s3test"
	"kpipe/internal/sim"
)

// An S3 outage (DESIGN.md's errors table, "Delta storage unavailable"):
// the tracking worker writes its table through a fault proxy in front of a
// real S3 server; while the proxy fails every request (5xx, resets before
// and after forwarding, closed connections, in turn) the worker pauses,
// answers not ready naming the storage, and commits no offset; when the
// proxy heals it goes on by itself, and the table holds every event once.
// Faults that reach the server (500 or a reset after forwarding) may land
// a commit the worker saw fail: its txn versions make the retry write
// nothing twice.
func TestWorkerS3Outage(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	px := srv.StartProxy(t)
	const prefix = "delta/itel_cabinet_task_tracking"
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 5, Projects: 20})
	want := e.entries()
	if len(want) < 20 {
		t.Fatalf("world too small: %d", len(want))
	}
	half := len(want) / 2

	s := deltaSinkTweaked(t, t.TempDir(), func(c *DeltaWriterConfig) {
		c.Location = px.URL(prefix)
		c.FlushInterval = 0.1
	})
	s.rows = func() []map[string]any { return readDelta(t, srv.URL(prefix)) }
	w := e.newWorker(t, s)
	stop := runWorker(t, ctx, w)
	e.produceTracking(ctx, want[:half])
	waitFor(t, 60*time.Second, "the first half on S3", func() bool { return len(s.rows()) == half })
	waitFor(t, 20*time.Second, "offsets of the first half", func() bool { return committedOffsets(t, e) == int64(half) })
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("Ready before the outage: %v", err)
	}
	up := e.metrics.DeltaStorageUp.WithLabelValues("itel_cabinet_task_tracking")

	outage := []s3test.Fault{s3test.Fault503, s3test.FaultResetBefore, s3test.Fault500After, s3test.FaultResetAfter, s3test.FaultCloseBefore, s3test.Fault500}
	var n atomic.Int64
	atStart := px.Requests()
	px.SetRule(func(*http.Request) s3test.Fault { return outage[int(n.Add(1))%len(outage)] })
	e.produceTracking(ctx, want[half:])
	waitFor(t, 60*time.Second, "the outage to be noticed", func() bool { return w.Ready(ctx) != nil })
	if err := w.Ready(ctx); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "table storage unavailable") {
		t.Fatalf("Ready during the outage = %v, want ErrNotReady naming the table storage", err)
	}
	if testutil.ToFloat64(up) != 0 {
		t.Fatalf("kpipe_delta_storage_up = %v during the outage, want 0", testutil.ToFloat64(up))
	}
	// Several failed rounds, and no offset committed past the first half.
	failures := func() float64 {
		return testutil.ToFloat64(e.metrics.WorkerDeltaWriteErrors.WithLabelValues(workerName))
	}
	before := failures()
	moved := int64(-1)
	waitFor(t, 60*time.Second, "retries during the outage", func() bool {
		if got := committedOffsets(t, e); got != int64(half) && moved < 0 {
			moved = got
		}
		return failures() >= before+3
	})
	if got := committedOffsets(t, e); got != int64(half) || moved >= 0 {
		t.Fatalf("committed offsets moved to %d (%d) during the outage, want %d", got, moved, half)
	}
	if err := w.Ready(ctx); err == nil {
		t.Fatal("ready during the outage")
	}
	failed := px.Requests() - atStart

	px.Heal()
	waitFor(t, 90*time.Second, "every row after the outage", func() bool { return len(s.rows()) >= len(want) })
	waitFor(t, 30*time.Second, "ready again", func() bool { return w.Ready(ctx) == nil })
	waitFor(t, 30*time.Second, "offsets of everything", func() bool { return committedOffsets(t, e) == int64(len(want)) })
	if testutil.ToFloat64(up) != 1 {
		t.Fatalf("kpipe_delta_storage_up = %v after the outage, want 1", testutil.ToFloat64(up))
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v (the worker must outlive an S3 outage)", err)
	}
	t.Logf("%d requests failed during the outage", failed)
	rows := s.rows()
	checkTimeline(t, rows, want)
	seen := map[any]int{}
	for _, r := range rows {
		seen[r["event_id"]]++
	}
	for _, en := range want {
		if seen[en.EventID] != 1 {
			t.Errorf("event %s: %d rows, want 1", en.EventID, seen[en.EventID])
		}
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	if errs := e.readTopic(ctx, errorTopic, -1, 500*time.Millisecond); len(errs) != 0 {
		t.Fatalf("%d error records for an S3 outage, want none: %s", len(errs), errs[0].Value)
	}
}
