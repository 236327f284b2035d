package enrich

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

// TestFencedProducer: another process initialising the same transactional
// id fences the worker; its next transaction fails and Run ends with
// ErrFenced (wrapping the broker's error), and Ready says so.
func TestFencedProducer(t *testing.T) {
	c := newCluster(t)
	s, base := startSim(t, 5, 4)
	_, m := newMetrics()
	orch, cx := components(t, base, m, testLogger())
	cl := newClient(t, c.ListenAddrs())
	r := runWorker(t, Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, Logger: testLogger(), TransactionalID: "fenced"})
	waitFor(t, 30*time.Second, "ready", func() bool { return r.w.Ready(t.Context()) == nil })

	// The usurper: same transactional id, a newer epoch.
	other := newClient(t, c.ListenAddrs(), kgo.TransactionalID("fenced"))
	if _, _, err := other.ProducerID(t.Context()); err != nil {
		t.Fatal(err)
	}
	publishWorld(t, t.Context(), cl, s, sim.GenerateOptions{})
	err := r.wait(t, 60*time.Second)
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("Run = %v, want ErrFenced", err)
	}
	if rerr := r.w.Ready(t.Context()); !errors.Is(rerr, ErrFenced) || !errors.Is(rerr, ErrNotReady) {
		t.Errorf("Ready = %v, want ErrNotReady wrapping ErrFenced", rerr)
	}
	if g := testutil.ToFloat64(m.Ready.WithLabelValues(DefaultName)); g != 0 {
		t.Errorf("kpipe_worker_ready = %v after the fence, want 0", g)
	}
	t.Logf("Run: %v", err)
}

// TestReadiness: not ready before Run, ready once in the group, not ready
// with the broker gone, and not ready after a clean stop.
func TestReadiness(t *testing.T) {
	c := newCluster(t)
	_, base := startSim(t, 5, 2)
	_, m := newMetrics()
	orch, cx := components(t, base, m, testLogger())
	w, err := New(Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, Logger: testLogger(), TransactionalID: "ready"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Ready(t.Context()); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Ready before Run = %v, want ErrNotStarted", err)
	}
	r := start(t, w)
	waitFor(t, 30*time.Second, "ready", func() bool { return r.w.Ready(t.Context()) == nil })
	if g := testutil.ToFloat64(m.Ready.WithLabelValues(DefaultName)); g != 1 {
		t.Errorf("kpipe_worker_ready = %v, want 1", g)
	}
	c.Close()
	waitFor(t, 30*time.Second, "not ready with the broker gone", func() bool { return errors.Is(r.w.Ready(t.Context()), ErrBrokerUnreachable) })
	r.alive(t)
	_ = r.stop()
	if err := r.w.Ready(t.Context()); !errors.Is(err, ErrNotReady) {
		t.Errorf("Ready after stop = %v, want not ready", err)
	}
}

// TestRebalanceWhilePaused: a worker holding a poll through a ClaimX
// outage does not hold up the group: a second worker joins and gets
// partitions while the outage lasts, the first drops what it held for the
// partitions it lost, and after the outage both together publish every
// event exactly once. The first then stops cleanly and leaves, and the
// second takes all partitions at once, without waiting for a session
// timeout.
func TestRebalanceWhilePaused(t *testing.T) {
	c := newCluster(t)
	s, base := startSim(t, 23, 16)
	if err := s.SetFaults(sim.Faults{ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	_, m1 := newMetrics()
	_, m2 := newMetrics()
	orch1, _ := components(t, base, m1, testLogger())
	orch2, _ := components(t, base, m2, testLogger())
	publishWorld(t, t.Context(), newClient(t, c.ListenAddrs()), s, sim.GenerateOptions{})
	opts := func(id string) Options {
		return Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: fastClient(t, base), Logger: testLogger(), TransactionalID: id, MaxBatch: 30,
			// A session timeout far beyond the test's patience: only a
			// leave moves partitions at once.
			SessionTimeout: 45 * time.Second, KafkaOpts: []kgo.Opt{kgo.RebalanceTimeout(3 * time.Second)},
			PauseBackoffMin: 20 * time.Millisecond, PauseBackoffMax: 200 * time.Millisecond}
	}
	o1 := opts("pair-1")
	o1.Orchestrator, o1.Metrics = orch1, m1
	w1 := runWorker(t, o1)
	waitFor(t, 30*time.Second, "the first worker paused", func() bool { return errors.Is(w1.w.Ready(t.Context()), ErrClaimXUnavailable) })

	o2 := opts("pair-2")
	o2.Orchestrator, o2.Metrics = orch2, m2
	w2 := runWorker(t, o2)
	// The second gets partitions, and pauses on ClaimX too: the group
	// rebalanced while the first was holding a poll.
	waitFor(t, 30*time.Second, "the second worker joined and paused", func() bool { return errors.Is(w2.w.Ready(t.Context()), ErrClaimXUnavailable) })
	w1.alive(t)
	if err := s.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	want := s.Manifest().Count(sim.TemplateITelCabinet)
	checkTracking(t, s, readCommitted(t, c.ListenAddrs(), trackingTopic, want, 60*time.Second, 500*time.Millisecond))
	consumed := func(m *Options) int {
		return int(testutil.ToFloat64(m.Metrics.EnrichEventsConsumed.WithLabelValues(DefaultName)))
	}
	if consumed(&o1) == 0 || consumed(&o2) == 0 {
		t.Errorf("consumed %d and %d: want both workers to have had partitions", consumed(&o1), consumed(&o2))
	}
	if consumed(&o1)+consumed(&o2) != s.Len() {
		t.Errorf("committed %d + %d events, want %d", consumed(&o1), consumed(&o2), s.Len())
	}

	// The first leaves on a clean stop: new events are all the second's
	// well before its 45s session would have expired.
	if err := w1.stop(); err != nil {
		t.Fatalf("first worker: %v", err)
	}
	stopped := time.Now()
	before := consumed(&o2)
	var recs []*kgo.Record
	for p := range 6 { // claimx.events has 6 partitions in config/topics.yaml
		recs = append(recs, &kgo.Record{Topic: kafka.TopicEvents, Partition: int32(p), Key: []byte("x"), Value: []byte(`{"event_id":"late","event_type":"PROJECT_CREATED","project_id":"1"}`)})
	}
	if err := newClient(t, c.ListenAddrs(), kgo.RecordPartitioner(kgo.ManualPartitioner())).ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the second worker to consume every partition", func() bool { return consumed(&o2) >= before+len(recs) })
	t.Logf("partitions moved %v after the clean stop", time.Since(stopped).Round(time.Millisecond))
	if err := w2.stop(); err != nil {
		t.Fatalf("second worker: %v", err)
	}
}

// TestSameInstanceID: a second worker started with the same identity
// (kpipe up and a separate kpipe enrich on one host) takes the group
// instance over; the first's Run ends with ErrFenced instead of staying
// up as a zombie.
func TestSameInstanceID(t *testing.T) {
	c := newCluster(t)
	_, base := startSim(t, 5, 2)
	_, m1 := newMetrics()
	_, m2 := newMetrics()
	orch, cx := components(t, base, m1, testLogger())
	o := Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m1, Logger: testLogger(), TransactionalID: "twin-1", InstanceID: "twin"}
	first := runWorker(t, o)
	waitFor(t, 30*time.Second, "the first worker ready", func() bool { return first.w.Ready(t.Context()) == nil })
	o.TransactionalID, o.Metrics = "twin-2", m2
	second := runWorker(t, o)
	err := first.wait(t, 60*time.Second)
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("first Run = %v, want ErrFenced", err)
	}
	t.Logf("first Run: %v", err)
	waitFor(t, 30*time.Second, "the second worker ready", func() bool { return second.w.Ready(t.Context()) == nil })
}
