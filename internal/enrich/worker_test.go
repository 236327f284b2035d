package enrich

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/dlq"
	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

func startWorker(t *testing.T, o Options) (stop func() error) {
	t.Helper()
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var stopped bool
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("worker did not stop within 30s")
			}
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop(); _ = w.Close(context.Background()) })
	return stop
}

// TestEndToEnd runs the simulator's world through the worker on kfake and
// checks the tracking topic against the manifest.
func TestEndToEnd(t *testing.T) {
	c := newCluster(t)
	s, url := startSim(t, 7, 60)
	_, m := newMetrics()
	log := testLogger()
	orch, cx := components(t, url, m, log)
	publishWorld(t, t.Context(), newClient(t, c.ListenAddrs()), s, sim.GenerateOptions{})

	stop := startWorker(t, Options{
		Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, Logger: log,
		TransactionalID: "e2e", MaxBatch: 200,
	})
	want := s.Manifest().Count(sim.TemplateITelCabinet)
	got := readCommitted(t, c.ListenAddrs(), trackingTopic, want, 60*time.Second, 500*time.Millisecond)
	checkTracking(t, s, got)
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v on graceful stop, want nil", err)
	}

	if n := testutil.ToFloat64(m.EnrichEventsConsumed.WithLabelValues(DefaultName)); int(n) != s.Len() {
		t.Errorf("consumed = %v, want %d", n, s.Len())
	}
	for name, c := range map[string]float64{
		"triggered": testutil.ToFloat64(m.PluginEventsTriggered.WithLabelValues("itel_cabinet_api")),
		"published": testutil.ToFloat64(m.PluginEventsPublished.WithLabelValues("itel_cabinet_api")),
	} {
		if int(c) < want {
			t.Errorf("%s = %v, want at least %d", name, c, want)
		}
	}
	if n := testutil.CollectAndCount(m.ConsumerLag); n == 0 {
		t.Error("consumer lag never set")
	}
	if n := testutil.ToFloat64(m.CacheMisses.WithLabelValues(DefaultName, "task_assignment")); n == 0 {
		t.Error("no task lookups counted")
	}
}

// TestErrorTopic sends a malformed event and an event of an unknown
// assignment: both go to claimx.enrichment.errors with their bytes and
// reason, and the events after them are processed.
func TestErrorTopic(t *testing.T) {
	c := newCluster(t)
	s, url := startSim(t, 3, 5)
	_, m := newMetrics()
	orch, cx := components(t, url, m, testLogger())
	cl := newClient(t, c.ListenAddrs())
	ctx := t.Context()

	garbage := []byte(`{"event_id": "broken", `)
	unknown := claimx.Event{EventID: "ghost-1", EventType: claimx.EventCustomTaskAssigned, ProjectID: "1", IngestedAt: time.Now(),
		TaskAssignmentID: claimx.SomeID(999999999), RawData: json.RawMessage(`{"status":"assigned","customTaskId":32513}`)}
	ghost, _ := json.Marshal(unknown)
	if err := cl.ProduceSync(ctx,
		&kgo.Record{Topic: kafka.TopicEvents, Key: []byte("p"), Value: garbage},
		&kgo.Record{Topic: kafka.TopicEvents, Key: []byte("p"), Value: ghost},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	publishWorld(t, ctx, cl, s, sim.GenerateOptions{})

	startWorker(t, Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, TransactionalID: "errs"})
	errs := readCommitted(t, c.ListenAddrs(), kafka.TopicEnrichmentErrors, 2, 30*time.Second, 300*time.Millisecond)
	if len(errs) != 2 {
		t.Fatalf("got %d error records, want 2", len(errs))
	}
	var reasons []string
	for _, r := range errs {
		var er dlq.Record
		if err := json.Unmarshal(r.value, &er); err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, er.Class)
		switch er.Class {
		case dlq.ClassMalformed:
			if string(er.OriginalBase64) != string(garbage) || string(er.Original) != "null" {
				t.Errorf("malformed record keeps %q / %s", er.OriginalBase64, er.Original)
			}
		case dlq.ClassNotFound:
			if string(er.OriginalBase64) != string(ghost) || !strings.Contains(er.Message, "999999999") {
				t.Errorf("not_found record: %+v", er)
			}
		}
		if er.Topic != kafka.TopicEvents || er.Worker != DefaultName || er.Attempt != 1 {
			t.Errorf("error record provenance: %+v", er)
		}
	}
	sort.Strings(reasons)
	if strings.Join(reasons, ",") != "malformed,not_found" {
		t.Fatalf("reasons %v", reasons)
	}
	// The worker went on: the world's events were all published.
	got := readCommitted(t, c.ListenAddrs(), trackingTopic, s.Manifest().Count(sim.TemplateITelCabinet), 30*time.Second, 300*time.Millisecond)
	checkTracking(t, s, got)
	for _, reason := range []string{dlq.ClassMalformed, dlq.ClassNotFound} {
		if n := testutil.ToFloat64(m.EnrichEventsFailed.WithLabelValues(DefaultName, reason)); n != 1 {
			t.Errorf("failed{%s} = %v, want 1", reason, n)
		}
	}
}

func TestNewNeedsDependencies(t *testing.T) {
	_, err := New(Options{Kafka: kafka.Config{Brokers: []string{"127.0.0.1:1"}}})
	if err == nil {
		t.Fatal("got no error")
	}
	for _, w := range []string{"Fetcher", "Orchestrator", "Metrics"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
}

// TestCloseWithoutRun: Close releases a worker that never ran, twice
// without harm, and Run refuses a closed worker.
func TestCloseWithoutRun(t *testing.T) {
	c := newCluster(t)
	_, url := startSim(t, 1, 5)
	_, m := newMetrics()
	orch, cx := components(t, url, m, testLogger())
	w, err := New(Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, Logger: testLogger(), TransactionalID: "close"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := w.Close(t.Context()); err != nil {
			t.Fatalf("Close %d: %v", i+1, err)
		}
	}
	if err := w.Run(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
}
