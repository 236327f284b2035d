package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/delta"
	"kpipe/internal/metrics"
	"kpipe/internal/sim"
)

func TestPlace(t *testing.T) {
	tests := []struct {
		name                         string
		table, committed, start, end int64
		tableID, topicID             string
		policy                       ResetPolicy
		wantStart, wantFloor         int64
		mismatch                     bool
		reset                        ResetPolicy
	}{
		{name: "fresh partition", table: -1, committed: -1, start: 0, end: 10, wantStart: -1, wantFloor: -1},
		{name: "table inside the log", table: 4, committed: -1, start: 0, end: 10, wantStart: 5, wantFloor: 4},
		{name: "table at the end", table: 9, committed: -1, start: 0, end: 10, wantStart: 10, wantFloor: 9},
		{name: "group ahead of the table", table: 4, committed: 8, start: 0, end: 10, wantStart: 8, wantFloor: 4},
		{name: "expired records that were handled", table: 4, committed: 8, start: 7, end: 10, wantStart: 8, wantFloor: 4},
		{name: "topic recreated", table: 516, committed: 517, start: 0, end: 40, wantStart: 517, wantFloor: 516, mismatch: true},
		{name: "records expired unwritten", table: 4, committed: -1, start: 9, end: 20, wantStart: 5, wantFloor: 4, mismatch: true},
		{name: "recreated, earliest", table: 516, committed: -1, start: 0, end: 40, policy: ResetEarliest, wantStart: 0, wantFloor: -1, mismatch: true, reset: ResetEarliest},
		{name: "expired, earliest", table: 4, committed: -1, start: 9, end: 20, policy: ResetEarliest, wantStart: 9, wantFloor: 4, mismatch: true, reset: ResetEarliest},
		{name: "recreated, latest", table: 516, committed: -1, start: 0, end: 40, policy: ResetLatest, wantStart: 40, wantFloor: 39, mismatch: true, reset: ResetLatest},
		{name: "policy without mismatch", table: 4, committed: -1, start: 0, end: 10, policy: ResetLatest, wantStart: 5, wantFloor: 4},
		{name: "same topic id", table: 4, committed: 5, start: 0, end: 10, tableID: "A", topicID: "A", wantStart: 5, wantFloor: 4},
		{name: "topic id unknown to the table", table: 4, committed: 5, start: 0, end: 10, topicID: "B", wantStart: 5, wantFloor: 4},
		// Offsets of the old log that fit the new one: only the id tells.
		{name: "recreated, offsets fit", table: 4, committed: 5, start: 0, end: 10, tableID: "A", topicID: "B", wantStart: 5, wantFloor: 4, mismatch: true},
		{name: "recreated, offsets fit, earliest", table: 4, committed: 5, start: 0, end: 10, tableID: "A", topicID: "B", policy: ResetEarliest, wantStart: 0, wantFloor: -1, mismatch: true, reset: ResetEarliest},
		{name: "recreated, offsets fit, latest", table: 4, committed: 5, start: 0, end: 10, tableID: "A", topicID: "B", policy: ResetLatest, wantStart: 10, wantFloor: 9, mismatch: true, reset: ResetLatest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl := place("w", "in", 0, partitionFacts{Table: tt.table, Committed: tt.committed, Start: tt.start, End: tt.end, TableTopicID: tt.tableID, TopicID: tt.topicID}, tt.policy)
			if pl.start != tt.wantStart || pl.floor != tt.wantFloor || (pl.mismatch != nil) != tt.mismatch || pl.reset != tt.reset {
				t.Fatalf("got start %d floor %d mismatch %v reset %q, want %d %d %v %q", pl.start, pl.floor, pl.mismatch, pl.reset, tt.wantStart, tt.wantFloor, tt.mismatch, tt.reset)
			}
			if pl.mismatch != nil && !strings.Contains(pl.mismatch.Error(), "--reset-offsets earliest") {
				t.Fatalf("mismatch error does not say what to do: %v", pl.mismatch)
			}
		})
	}
}

func TestHealthCheck(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	h := newHealth("w", "g", "in", m, testLogger(t), time.Minute)
	t0 := time.Now()
	if err := h.check(t0); err == nil || !strings.Contains(err.Error(), "join") {
		t.Fatalf("before the group assigned: %v, want waiting to join", err)
	}
	h.assigned(0, 10)
	h.progress = t0
	if err := h.check(t0); err != nil {
		t.Fatalf("assigned, nothing pending: %v", err)
	}
	// Records wait; within the stall timeout the worker is ready.
	h.consumed(0, 14, 14, 20)
	if err := h.check(t0.Add(30 * time.Second)); err != nil {
		t.Fatalf("pending within the stall timeout: %v", err)
	}
	if got := testutil.ToFloat64(m.ConsumerLag.WithLabelValues("g", "in", "0")); got != 5 {
		t.Fatalf("lag %v, want 5 (end 20, position 15)", got)
	}
	err := h.check(t0.Add(2 * time.Minute))
	if err == nil || !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("pending past the stall timeout: %v, want stalled", err)
	}
	// Made durable and drained: ready again, lag 0 even with a marker at 20.
	h.madeDurable(0, 19)
	h.consumed(0, 20, -1, 21)
	if err := h.check(time.Now()); err != nil {
		t.Fatalf("drained: %v", err)
	}
	if got := testutil.ToFloat64(m.ConsumerLag.WithLabelValues("g", "in", "0")); got != 0 {
		t.Fatalf("lag %v after the marker, want 0", got)
	}
	// Failing lookups: degraded, not unready.
	h.lookupFailed(3, errors.New("claimx: 503"), time.Now())
	if err := h.check(time.Now()); !errors.Is(err, metrics.ErrDegraded) || errors.Is(err, ErrNotReady) {
		t.Fatalf("failing lookups: %v, want degraded", err)
	}
	if err := h.check(time.Now().Add(2 * degradedWindow)); err != nil {
		t.Fatalf("a quiet window after the last failed lookup: %v", err)
	}
	h.setStorage(errors.New("disk gone"))
	if err := h.check(time.Now()); err == nil || !strings.Contains(err.Error(), "storage") {
		t.Fatalf("storage down: %v", err)
	}
	h.setStorage(nil)
	h.stop(1, &OffsetMismatchError{Topic: "in", Partition: 1, Next: 9, End: 3})
	var mm *OffsetMismatchError
	if err := h.check(time.Now()); !errors.As(err, &mm) || mm.Partition != 1 {
		t.Fatalf("stopped partition: %v", err)
	}
}

// A table whose txn versions are beyond the partition's end (the topic was
// recreated, a second kpipe up on the same data) must not skip the new
// records silently: that partition stops with an OffsetMismatchError, a
// metric and not-ready; the other partitions go on.
func TestWorkerStaleOffsetsStopPartition(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 3, Projects: 30})
	want := e.entries()
	tbl := newMemTable()
	tbl.txns[AppID(workerName, inputTopic, 0)] = 100_000
	w := newTestWorker(t, e, tbl, WithHealthInterval(50*time.Millisecond))
	stop := runWorker(t, ctx, w)
	e.produceTracking(ctx, want)

	var mm *OffsetMismatchError
	waitFor(t, 30*time.Second, "partition 0 stopped", func() bool { return errors.As(w.Ready(ctx), &mm) })
	if mm.Partition != 0 || mm.Table != 100_000 || !strings.Contains(mm.Error(), "recreated") {
		t.Fatalf("mismatch %v", mm)
	}
	if got := testutil.ToFloat64(e.metrics.PartitionOffsetMismatch.WithLabelValues(workerName, inputTopic, "0")); got != 1 {
		t.Fatalf("mismatch gauge %v, want 1", got)
	}
	// The other partitions are written; partition 0's records are not, nor
	// dropped: they wait in Kafka.
	counts := partitionCounts(t, e, want)
	waitFor(t, 30*time.Second, "rows of partitions 1 and 2", func() bool { return len(tbl.snapshot()) == counts[1]+counts[2] })
	if counts[0] == 0 {
		t.Fatal("no record went to partition 0: the test shows nothing")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// partitionCounts returns how many of entries' records landed in each
// input partition.
func partitionCounts(t *testing.T, e *env, entries []sim.ManifestEntry) map[int32]int {
	t.Helper()
	recs := e.readTopic(t.Context(), inputTopic, len(entries), 20*time.Second)
	out := map[int32]int{}
	for _, r := range recs {
		out[r.Partition]++
	}
	return out
}

// A drained worker reading a transactional topic shows lag 0: the lag is
// the end offset less the consumer's position, transaction markers
// included.
func TestWorkerLagZeroAfterTransactions(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 4, Projects: 20})
	want := e.entries()
	tbl := newMemTable()
	w := newTestWorker(t, e, tbl, WithHealthInterval(50*time.Millisecond))
	stop := runWorker(t, ctx, w)

	txp, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.DefaultProduceTopic(inputTopic), kgo.TransactionalID("lag-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer txp.Close()
	m := e.sim.Manifest()
	for i, en := range want {
		if i%10 == 0 {
			if err := txp.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
		}
		created := m.Assignments[en.AssignmentID][0].At
		if err := txp.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprint(en.AssignmentID)), Value: trackingPayload(en, created)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 || i == len(want)-1 {
			if err := txp.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 30*time.Second, "all rows", func() bool { return len(tbl.snapshot()) == len(want) })
	lag := func(p string) float64 {
		return testutil.ToFloat64(e.metrics.ConsumerLag.WithLabelValues(e.worker.ConsumerGroup, inputTopic, p))
	}
	waitFor(t, 30*time.Second, "lag 0 on every partition", func() bool { return lag("0") == 0 && lag("1") == 0 && lag("2") == 0 })
	waitFor(t, 30*time.Second, "ready", func() bool { return w.Ready(ctx) == nil })
	if got := testutil.ToFloat64(e.metrics.Ready.WithLabelValues(workerName)); got != 1 {
		t.Fatalf("ready gauge %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.metrics.WorkerMessagesConsumed.WithLabelValues(workerName)); got != float64(len(want)) {
		t.Fatalf("consumed %v, want %d: transaction markers must not count", got, len(want))
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// --reset-offsets earliest on a table that outlived its topic: the stopped
// partition's records are written from the log's start, the txn version
// goes down in a commit whose commitInfo says why, and nothing is skipped.
func TestWorkerResetOffsetsEarliest(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 3, Projects: 30})
	want := e.entries()
	dir := t.TempDir()
	tbl, store := createTable(t, dir, nil)
	stale := AppID(workerName, inputTopic, 0)
	if _, err := tbl.Append(ctx, nil, delta.AppendOptions{Txns: []delta.Txn{{AppID: stale, Version: 100_000}}}); err != nil {
		t.Fatal(err)
	}
	_ = tbl.Close(ctx)

	s := deltaSink(t, dir)
	e.produceTracking(ctx, want)
	w := e.newWorker(t, s, WithResetOffsets(ResetEarliest))
	stop := runWorker(t, ctx, w)
	waitFor(t, 30*time.Second, "every row", func() bool { return len(s.rows()) == len(want) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkTimeline(t, s.rows(), want)
	if got := testutil.ToFloat64(e.metrics.OffsetResets.WithLabelValues(workerName, inputTopic, "earliest")); got != 1 {
		t.Fatalf("offset resets %v, want 1", got)
	}
	tbl, err := delta.Open(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := snap.TxnVersion(stale); v >= 100_000 {
		t.Fatalf("txn version of partition 0 still %d", v)
	}
	found := false
	for _, ci := range snap.History() {
		if r, ok := ci.Info["kpipe.offsetReset"]; ok {
			found = strings.Contains(fmt.Sprint(r), "reset-offsets earliest")
		}
	}
	if !found {
		t.Fatal("no commit records the offset reset in its commitInfo")
	}
}

// A topic deleted and recreated under its name starts its offsets again:
// the table's txn versions of the old log may fit the new one, and the
// offsets check alone would skip the new records below them. The topic id
// the commits recorded tells: the partitions stop, naming the ids, until
// --reset-offsets earliest writes the new topic from its start.
func TestWorkerRecreatedTopicStopsPartition(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 3, Projects: 30})
	want := e.entries()
	first, rest := want[:12], want[12:]
	dir := t.TempDir()

	s := deltaSink(t, dir)
	e.produceTracking(ctx, first)
	w := e.newWorker(t, s)
	stop := runWorker(t, ctx, w)
	waitFor(t, 30*time.Second, "the first rows", func() bool { return len(s.rows()) == len(first) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	before, err := topicID(ctx, adm, inputTopic)
	if err != nil || before == "" {
		t.Fatalf("topic id before: %q, %v (the broker must have topic ids for this test)", before, err)
	}
	if _, err := adm.DeleteTopics(ctx, inputTopic); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "topic recreated", func() bool {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, inputTopic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			t.Logf("creating %s again: %v", inputTopic, err)
			return false
		}
		id, err := topicID(ctx, adm, inputTopic)
		if err != nil {
			t.Logf("topic id: %v", err)
		}
		return err == nil && id != "" && id != before
	})
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.DefaultProduceTopic(inputTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	e.prod = prod
	e.produceTracking(ctx, rest) // more records per partition than before: the old offsets fit

	s2 := deltaSink(t, dir)
	w2 := e.newWorker(t, s2)
	stop2 := runWorker(t, ctx, w2)
	var mm *OffsetMismatchError
	waitFor(t, 30*time.Second, "a partition stopped as recreated", func() bool { return errors.As(w2.Ready(ctx), &mm) && mm.Recreated() })
	if !strings.Contains(mm.Error(), "recreated") || mm.TableTopicID != before {
		t.Fatalf("mismatch %v", mm)
	}
	if err := stop2(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	s3 := deltaSink(t, dir)
	w3 := e.newWorker(t, s3, WithResetOffsets(ResetEarliest))
	stop3 := runWorker(t, ctx, w3)
	waitFor(t, 60*time.Second, "every row", func() bool { return len(s3.rows()) == len(want) })
	if err := stop3(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	seen := map[any]int{}
	for _, r := range s3.rows() {
		seen[r["event_id"]]++
	}
	for _, en := range want {
		if seen[en.EventID] != 1 {
			t.Errorf("event %s: %d rows, want 1", en.EventID, seen[en.EventID])
		}
	}
}

// A broker that comes back must make the worker ready again well before the
// next scheduled check: with an interval of an hour, only the retry while
// unreachable can clear the failure.
func TestHealthBrokerBack(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", port)), kgo.RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	m := metrics.New(prometheus.NewRegistry())
	h := newHealth("w", "g", "in", m, testLogger(t), time.Minute)
	h.joinedEmpty()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); h.run(ctx, kadm.NewClient(cl), "in", time.Hour) }()
	defer func() { cancel(); <-done }()
	unreachable := func() bool {
		err := h.check(time.Now())
		return err != nil && strings.Contains(err.Error(), "kafka unreachable")
	}
	waitFor(t, time.Minute, "the broker check to fail with no broker", unreachable)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(1, "in"))
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer c.Close()
	waitFor(t, time.Minute, "ready once the broker is back", func() bool { return h.check(time.Now()) == nil })
}
