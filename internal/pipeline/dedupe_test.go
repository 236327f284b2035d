package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/delta"
	"kpipe/internal/dlq"
	"kpipe/internal/sim"
)

const trackingTable = "itel_cabinet_task_tracking"

func withDedupe(cfg *DeltaWriterConfig) *DeltaWriterConfig {
	cfg.Dedupe = &DedupeConfig{Key: "event_id", Time: "event_timestamp", Window: 168 * time.Hour}
	return cfg
}

func TestDedupeConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		d    DedupeConfig
		want string
	}{
		{DedupeConfig{Key: "event_id", Time: "event_timestamp", Window: time.Hour}, ""},
		{DedupeConfig{Time: "event_timestamp", Window: time.Hour}, "dedupe.key is required"},
		{DedupeConfig{Key: "nope", Time: "event_timestamp", Window: time.Hour}, `dedupe.key: "nope" is not a column of column_mapping`},
		{DedupeConfig{Key: "event_id", Time: "nope", Window: time.Hour}, `dedupe.time: "nope" is not a column`},
		{DedupeConfig{Key: "event_id", Time: "event_timestamp"}, "dedupe.window must be a positive duration"},
	} {
		cfg := trackingWriterConfig()
		cfg.Dedupe = &tc.d
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.d, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want %q", tc.d, err, tc.want)
		}
	}
}

// handleAndCommit buffers evs in w and commits them with one mark per
// partition at its highest offset.
func handleAndCommit(t *testing.T, w *DeltaWriter, evs ...*Event) *FlushResult {
	t.Helper()
	res, err := w.HandleBatch(t.Context(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("event %d: %v", i, r.Err)
		}
	}
	last := map[int32]int64{}
	for _, ev := range evs {
		last[ev.Partition] = max(last[ev.Partition], ev.Offset)
	}
	var marks []Mark
	for p, o := range last {
		marks = append(marks, Mark{Topic: inputTopic, Partition: p, Offset: o})
	}
	fr, err := w.Flush(t.Context(), marks)
	if err != nil {
		t.Fatal(err)
	}
	return fr
}

// eventIDs counts the rows of the table under dir by event_id.
func eventIDs(t *testing.T, dir string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, r := range readDelta(t, filepath.Join(dir, "delta", trackingTable)) {
		id, _ := r["event_id"].(string)
		n[id]++
	}
	return n
}

func withID(ev *Event, id string, partition int32) *Event {
	ev.Fields["event_id"] = id
	ev.Partition = partition
	return ev
}

// One writer: a key repeated within a flush is written once (the first
// kept), a redelivery in a later flush is dropped, and the commit records
// the count in commitInfo. An event older than the window is not checked.
func TestDeltaWriterDedupe(t *testing.T) {
	dir := t.TempDir()
	w := newTestDeltaWriter(t, dir, withDedupe(trackingWriterConfig()))
	fr := handleAndCommit(t, w, withID(trackingEvent(0, nil), "a", 0), withID(trackingEvent(1, nil), "b", 0), withID(trackingEvent(2, nil), "a", 0))
	if len(fr.Written) != 2 || fr.Duplicates != 1 || fr.Written[0].Offset != 0 {
		t.Fatalf("first flush: written %d (first offset %d), duplicates %d; want 2 from offset 0, 1", len(fr.Written), fr.Written[0].Offset, fr.Duplicates)
	}
	fr = handleAndCommit(t, w, withID(trackingEvent(3, nil), "b", 0), withID(trackingEvent(4, nil), "c", 0))
	if len(fr.Written) != 1 || fr.Duplicates != 1 {
		t.Fatalf("second flush: written %d, duplicates %d; want 1, 1", len(fr.Written), fr.Duplicates)
	}
	// Only duplicates: nothing written, the txn still moves on.
	fr = handleAndCommit(t, w, withID(trackingEvent(5, nil), "c", 0))
	if len(fr.Written) != 0 || fr.Duplicates != 1 || fr.Version < 0 {
		t.Fatalf("third flush: written %d, duplicates %d, version %d; want 0, 1, a commit", len(fr.Written), fr.Duplicates, fr.Version)
	}
	// 200 days before the newest event: outside the window, not checked.
	old := func(off int64) *Event {
		return withID(trackingEvent(off, map[string]any{"event_timestamp": "2025-06-24T12:00:00Z"}), "old", 0)
	}
	handleAndCommit(t, w, old(6))
	if fr := handleAndCommit(t, w, old(7)); len(fr.Written) != 1 {
		t.Fatalf("an event older than the window: written %d, want 1 (not checked)", len(fr.Written))
	}
	ids := eventIDs(t, dir)
	if ids["a"] != 1 || ids["b"] != 1 || ids["c"] != 1 || ids["old"] != 2 {
		t.Fatalf("rows by event_id %v", ids)
	}
	store, err := delta.OpenLocation(filepath.Join(dir, "delta", trackingTable))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := tbl.History(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, c := range hist {
		if n, ok := c.Info[CommitInfoDuplicatesDropped].(json.Number); ok {
			v, _ := n.Int64()
			total += int(v)
		}
	}
	if total != 3 {
		t.Fatalf("commitInfo %s sums to %d over the history, want 3", CommitInfoDuplicatesDropped, total)
	}
}

// A new writer (a restart) builds its state from the table: it drops a
// redelivery of an event the previous writer wrote.
func TestDeltaWriterDedupeRestartRebuilds(t *testing.T) {
	dir := t.TempDir()
	a := newTestDeltaWriter(t, dir, withDedupe(trackingWriterConfig()))
	handleAndCommit(t, a, withID(trackingEvent(0, nil), "x", 0), withID(trackingEvent(1, nil), "y", 0))
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := newTestDeltaWriter(t, dir, withDedupe(trackingWriterConfig()))
	fr := handleAndCommit(t, b, withID(trackingEvent(2, nil), "y", 0), withID(trackingEvent(3, nil), "z", 0))
	if len(fr.Written) != 1 || fr.Duplicates != 1 {
		t.Fatalf("after the restart: written %d, duplicates %d; want 1, 1", len(fr.Written), fr.Duplicates)
	}
	if ids := eventIDs(t, dir); len(ids) != 3 || ids["y"] != 1 {
		t.Fatalf("rows by event_id %v", ids)
	}
}

// openDedupeWriter opens worker's DeltaWriter, with dedupe, on the
// tracking table under dir; afterDataFiles is its Deps hook (may be nil).
func openDedupeWriter(t *testing.T, dir, worker string, afterDataFiles func() error) (*DeltaWriter, *deltaTable) {
	t.Helper()
	deps := Deps{TableDefs: tableDefs, WorkerName: worker, AfterDataFiles: afterDataFiles}.withDefaults()
	cfg := withDedupe(trackingWriterConfig())
	tbl, err := openDeltaTable(filepath.Join(dir, "delta", cfg.TableName), cfg.TableName, deps)
	if err != nil {
		t.Fatal(err)
	}
	w := newDeltaWriter(cfg, tbl, deps)
	t.Cleanup(func() { _ = w.Close(t.Context()) })
	return w, tbl.(*deltaTable)
}

// Two writers on one table (other workers, other partitions) drop each
// other's duplicates: one committed before the other filters its batch
// (the refresh before each commit), and one committed while the other's
// batch is being written (the check in BeforeCommit, which filters the
// batch again).
func TestDeltaWriterDedupeTwoWriters(t *testing.T) {
	dir := t.TempDir()
	open := func(worker string, afterDataFiles func() error) *DeltaWriter {
		w, _ := openDedupeWriter(t, dir, worker, afterDataFiles)
		return w
	}
	var hook func() error
	a := open("worker_a", nil)
	b := open("worker_b", func() error {
		if h := hook; h != nil {
			hook = nil
			return h()
		}
		return nil
	})
	handleAndCommit(t, a, withID(trackingEvent(0, nil), "k1", 0))
	// b has not synced yet: its first commit builds the state with k1.
	fr := handleAndCommit(t, b, withID(trackingEvent(0, nil), "k1", 1), withID(trackingEvent(1, nil), "k2", 1))
	if len(fr.Written) != 1 || fr.Duplicates != 1 {
		t.Fatalf("b: written %d, duplicates %d; want 1, 1", len(fr.Written), fr.Duplicates)
	}
	// a refreshes with b's commit.
	if fr := handleAndCommit(t, a, withID(trackingEvent(1, nil), "k2", 0)); fr.Duplicates != 1 {
		t.Fatalf("a: duplicates %d, want 1", fr.Duplicates)
	}
	// a commits k3 after b filtered a batch holding it, before b commits.
	hook = func() error {
		handleAndCommit(t, a, withID(trackingEvent(2, nil), "k3", 0))
		return nil
	}
	fr = handleAndCommit(t, b, withID(trackingEvent(2, nil), "k3", 1), withID(trackingEvent(3, nil), "k4", 1))
	if len(fr.Written) != 1 || fr.Written[0].Fields["event_id"] != "k4" || fr.Duplicates != 1 {
		t.Fatalf("b across a's commit: written %d, duplicates %d; want k4 only, 1", len(fr.Written), fr.Duplicates)
	}
	ids := eventIDs(t, dir)
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		if ids[k] != 1 {
			t.Fatalf("rows by event_id %v: %s not once", ids, k)
		}
	}
}

// The dedupe refresh does not read back the files the writer itself
// committed (their keys went into the set as they were committed), but
// reads another writer's, and a rebuild reads every file.
func TestDedupeScanSkipsOwnFiles(t *testing.T) {
	dir := t.TempDir()
	a, at := openDedupeWriter(t, dir, "worker_a", nil)
	b, _ := openDedupeWriter(t, dir, "worker_b", nil)
	scan := func(mark any) (any, []string) {
		var keys []string
		next, err := at.scanKeys(t.Context(), mark, true, "event_id", "event_timestamp", time.Time{}, func(k []byte, _ time.Time) {
			keys = append(keys, string(k))
		})
		if err != nil {
			t.Fatal(err)
		}
		return next, keys
	}
	handleAndCommit(t, a, withID(trackingEvent(0, nil), "k1", 0))
	mark, _ := scan(nil)
	handleAndCommit(t, a, withID(trackingEvent(1, nil), "k2", 0))
	mark, keys := scan(mark)
	if len(keys) != 0 {
		t.Fatalf("refresh after a's own commit read keys %v, want none", keys)
	}
	handleAndCommit(t, b, withID(trackingEvent(2, nil), "k3", 1))
	if _, keys = scan(mark); !slices.Equal(keys, []string{"k3"}) {
		t.Fatalf("refresh after b's commit read keys %v, want [k3]", keys)
	}
	if _, keys = scan(nil); len(keys) != 3 {
		t.Fatalf("rebuild read keys %v, want k1, k2, k3", keys)
	}
	// a still drops what it wrote itself.
	if fr := handleAndCommit(t, a, withID(trackingEvent(3, nil), "k2", 0)); fr.Duplicates != 1 {
		t.Fatalf("a: duplicates %d, want 1", fr.Duplicates)
	}
}

// The duplicate-delivery test on the embedded broker: every event is
// delivered two or three times, each extra copy at one of these distances
// from the first: in the same flush (produced right after it), in a later
// flush, after a worker restart (a new worker on the same table), and
// across a rebalance (a second worker joins; these copies go to other
// partitions, under another key). The table holds each event_id once, and
// kpipe_duplicates_dropped_total counts every extra delivery.
func TestWorkerDuplicateDelivery(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 5, Projects: 40})
	want := e.entries()
	rng := rand.New(rand.NewPCG(11, 12))
	third := len(want) / 3
	groups := [][]sim.ManifestEntry{want[:third], want[third : 2*third], want[2*third:]}
	// Distances each group's extra copies can have: a group's events are
	// first delivered in its phase, before the restart (0), after it (1)
	// and during the rebalance (2).
	kinds := [][]string{{"same", "later", "restart", "rebalance"}, {"same", "later", "rebalance"}, {"same", "later"}}
	// copies[phase][kind] are the extra deliveries of that phase.
	copies := [3]map[string][]sim.ManifestEntry{{}, {}, {}}
	extras := 0
	byKind := map[string]int{}
	for g, evs := range groups {
		for _, en := range evs {
			for range 1 + rng.IntN(2) { // 2 or 3 deliveries
				k := kinds[g][rng.IntN(len(kinds[g]))]
				phase := g
				switch k {
				case "restart":
					phase = 1
				case "rebalance":
					phase = 2
				}
				copies[phase][k] = append(copies[phase][k], en)
				extras++
				byKind[k]++
			}
		}
	}
	t.Logf("%d events, %d extra deliveries by distance %v", len(want), extras, byKind)

	dir := t.TempDir()
	tweak := func(c *DeltaWriterConfig) {
		c.FlushRows = 40
		c.FlushInterval = 0.1
	}
	dropped := e.metrics.DuplicatesDropped.WithLabelValues(workerName, trackingTable)
	rows := func() int { return len(readDelta(t, filepath.Join(dir, "delta", trackingTable))) }
	// produce delivers evs, each followed by its same-flush copies.
	produce := func(evs []sim.ManifestEntry, same []sim.ManifestEntry) {
		dup := map[string]int{}
		for _, en := range same {
			dup[en.EventID]++
		}
		var out []sim.ManifestEntry
		for _, en := range evs {
			out = append(out, en)
			for range dup[en.EventID] {
				out = append(out, en)
			}
		}
		e.produceTracking(ctx, out)
	}
	// produceElsewhere delivers evs under another key: another partition.
	produceElsewhere := func(evs []sim.ManifestEntry) {
		m := e.sim.Manifest()
		var recs []*kgo.Record
		for i, en := range evs {
			created := m.Assignments[en.AssignmentID][0].At
			recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "redelivery-%d", i), Value: trackingPayload(en, created)})
		}
		e.produce(ctx, recs...)
	}
	distinct, delivered := 0, 0
	settle := func(what string) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() bool {
			return rows() == distinct && int(counterValue(dropped)) == delivered-distinct
		})
	}
	phase := func(p int) {
		produce(groups[p], copies[p]["same"])
		distinct += len(groups[p])
		delivered += len(groups[p]) + len(copies[p]["same"])
		settle(fmt.Sprintf("phase %d's first deliveries", p))
		produce(copies[p]["later"], nil)
		delivered += len(copies[p]["later"])
		settle(fmt.Sprintf("phase %d's later copies", p))
	}

	a := e.newWorker(t, deltaSinkTweaked(t, dir, tweak))
	stopA := runWorker(t, ctx, a)
	phase(0)
	if err := stopA(); err != nil {
		t.Fatalf("worker a: %v", err)
	}

	// The restart: a new worker, its state rebuilt from the table.
	b := e.newWorker(t, deltaSinkTweaked(t, dir, tweak))
	stopB := runWorker(t, ctx, b)
	produce(copies[1]["restart"], nil)
	delivered += len(copies[1]["restart"])
	settle("the copies after the restart")
	phase(1)

	// The rebalance: c joins while copies arrive on every partition, half
	// of them while the group rebalances, half once both members share it.
	c := e.newWorker(t, deltaSinkTweaked(t, dir, tweak))
	stopC := runWorker(t, ctx, c)
	rb := copies[2]["rebalance"]
	produceElsewhere(rb[:len(rb)/2])
	adm := kadm.NewClient(e.prod)
	waitFor(t, 30*time.Second, "both workers in the group", func() bool {
		gs, err := adm.DescribeGroups(ctx, e.worker.ConsumerGroup)
		g, ok := gs[e.worker.ConsumerGroup]
		return err == nil && ok && g.State == "Stable" && len(g.Members) == 2
	})
	produceElsewhere(rb[len(rb)/2:])
	delivered += len(rb)
	settle("the copies across the rebalance")
	phase(2)

	if err := stopC(); err != nil {
		t.Fatalf("worker c: %v", err)
	}
	if err := stopB(); err != nil {
		t.Fatalf("worker b: %v", err)
	}
	if delivered-distinct != extras {
		t.Fatalf("delivered %d extra copies, planned %d", delivered-distinct, extras)
	}
	checkTimeline(t, readDelta(t, filepath.Join(dir, "delta", trackingTable)), want)
	if got := int(counterValue(dropped)); got != extras {
		t.Fatalf("kpipe_duplicates_dropped_total %d, want %d", got, extras)
	}
	if got := int(counterValue(e.metrics.Skipped.WithLabelValues(workerName, SkipDuplicate))); got != extras {
		t.Fatalf("kpipe_skipped_total{reason=duplicate} %d, want %d", got, extras)
	}
}

// kpipe dlq replay --include-written re-injects records whose row was
// written (lookup failures with log_and_continue): with dedupe on, the
// worker drops them, so nothing is written twice.
func TestDLQReplayIncludeWrittenWritesNothingTwice(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 2, Projects: 10})
	e.cfg.Connections["claimx_api"].MaxRetries = 0
	want := e.entries()[:15]
	if err := e.sim.SetFaults(sim.Faults{ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := deltaSink(t, dir)
	w := e.newWorker(t, s)
	stop := runWorker(t, ctx, w)
	e.produceTracking(ctx, want)
	waitFor(t, 30*time.Second, "rows during the outage", func() bool { return len(s.rows()) == len(want) })
	if err := e.sim.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.readTopic(ctx, errorTopic, len(want), 10*time.Second)); n != len(want) {
		t.Fatalf("%d error records, want %d", n, len(want))
	}

	seeds := []kgo.Opt{kgo.SeedBrokers(e.cluster.ListenAddrs()...)}
	cl, err := kgo.NewClient(seeds...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	st, err := dlq.Replay(ctx, cl, seeds, dlq.ReplayOptions{ErrorTopic: errorTopic, IncludeWritten: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Total() != len(want) {
		t.Fatalf("replayed %d, want %d (stats %+v)", st.Total(), len(want), st)
	}
	dropped := e.metrics.DuplicatesDropped.WithLabelValues(workerName, trackingTable)
	waitFor(t, 30*time.Second, "the replayed records dropped", func() bool { return int(counterValue(dropped)) == len(want) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	rows := s.rows()
	if len(rows) != len(want) {
		t.Fatalf("%d rows after the replay, want %d", len(rows), len(want))
	}
	checkTimeline(t, rows, want)
}

// A table that cannot read its rows back cannot deduplicate: the commit
// fails as fatal, naming the table, rather than write duplicates.
func TestDeltaWriterDedupeNeedsKeyScanner(t *testing.T) {
	w := newDeltaWriter(withDedupe(trackingWriterConfig()), noScanTable{newMemTable()}, Deps{})
	_, err := w.HandleBatch(t.Context(), []*Event{trackingEvent(0, nil)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Flush(t.Context(), []Mark{{Topic: inputTopic, Offset: 0}})
	if !errors.Is(err, ErrFatal) || !strings.Contains(err.Error(), "cannot read its rows back") {
		t.Fatalf("Flush: %v, want a fatal error", err)
	}
}

// noScanTable hides memTable's scanKeys.
type noScanTable struct{ table }
