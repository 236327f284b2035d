package pipeline

import (
	"testing"
	"time"

	"kpipe/internal/s3test"
	"kpipe/internal/sim"
)

// The tracking worker writes its table to S3 (a real server, versitygw):
// every row once, and a restarted worker starts after the txn versions it
// reads back from the S3 log, writing nothing twice.
func TestWorkerWritesToS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	loc := srv.URL("delta/itel_cabinet_task_tracking")
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 3, Projects: 20})
	want := e.entries()
	first, rest := want[:len(want)/2], want[len(want)/2:]

	s := deltaSinkTweaked(t, t.TempDir(), func(c *DeltaWriterConfig) { c.Location = loc })
	s.rows = func() []map[string]any { return readDelta(t, loc) }
	e.produceTracking(ctx, first)
	stop := runWorker(t, ctx, e.newWorker(t, s))
	waitFor(t, 60*time.Second, "the first half on S3", func() bool { return len(s.rows()) == len(first) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	e.produceTracking(ctx, rest)
	stop = runWorker(t, ctx, e.newWorker(t, s))
	waitFor(t, 60*time.Second, "every row on S3", func() bool { return len(s.rows()) >= len(want) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	rows := s.rows()
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
}
