package enrich

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/config"
	"kpipe/internal/dlq"
	"kpipe/internal/httpconn"
	"kpipe/internal/kafka"
	"kpipe/internal/plugin"
	"kpipe/internal/sim"
)

// failingKey is the ClaimX client with one assignment that always fails
// as unavailable (a 500 for that key only), as a broken row does on a real
// API: ClaimX answers every other request.
type failingKey struct {
	*claimx.Client
	aid int64
}

func (f *failingKey) TaskAssignmentRaw(ctx context.Context, aid int64) (*claimx.RawRow, error) {
	if aid == f.aid {
		return nil, &httpconn.Error{Connection: "claimx_api", Method: http.MethodGet, URL: fmt.Sprintf("/customTasks/assignment/%d?full=true", aid),
			Status: http.StatusInternalServerError, Retryable: true, Attempts: 2}
	}
	return f.Client.TaskAssignmentRaw(ctx, aid)
}

func decodeErrorRecords(t *testing.T, recs []outRecord) map[string]dlq.Record {
	t.Helper()
	byEvent := make(map[string]dlq.Record)
	for _, r := range recs {
		var er dlq.Record
		if err := json.Unmarshal(r.value, &er); err != nil {
			t.Fatalf("error record %s: %v", r.value, err)
		}
		if want := fmt.Sprintf("%s/%d/%d", er.Topic, er.Partition, er.Offset); r.key != want {
			t.Errorf("error record key %q, want %q", r.key, want)
		}
		orig, _ := er.OriginalBytes()
		id := string(orig)
		if ev, err := claimx.ParseEvent(orig); err == nil {
			id = ev.EventID
		}
		byEvent[id] = er
	}
	return byEvent
}

// TestPoisonEvents interleaves an event of every bad kind with a simulated
// world: each gets an error record of its class, the world is published
// exactly once, and every consumed event is accounted for as output, a
// counted skip or an error record.
func TestPoisonEvents(t *testing.T) {
	c := newCluster(t)
	s, base := startSim(t, 9, 10)
	_, m := newMetrics()
	orch, cx := components(t, base, m, testLogger())
	cl := newClient(t, c.ListenAddrs())
	ctx := t.Context()

	man := s.Manifest()
	broken := man.AssignmentIDs(sim.TemplateITelCabinet)[0]
	task := func(id, typ string, aid string) []byte {
		return []byte(`{"event_id":"` + id + `","event_type":"` + typ + `","project_id":"1","ingested_at":"2026-01-05T08:00:00.000Z","task_assignment_id":` + aid + `,"raw_data":{"status":"assigned","customTaskId":32513}}`)
	}
	poison := []struct {
		id    string
		value []byte
		class string
	}{
		{"not-json", []byte(`{"event_id": "not-json", `), dlq.ClassMalformed},
		{"not-utf8", []byte("{\"event_id\":\"not-utf8\",\"event_type\":\"CUSTOM_TASK_\xff\xfe\",\"task_assignment_id\":1}"), dlq.ClassMalformed},
		{"null-assignment", task("null-assignment", claimx.EventCustomTaskAssigned, "null"), dlq.ClassMalformed},
		{"no-assignment", []byte(`{"event_id":"no-assignment","event_type":"CUSTOM_TASK_COMPLETED","project_id":"1"}`), dlq.ClassMalformed},
		{"unknown-type", task("unknown-type", "CUSTOM_TASK_EXPLODED", "1"), dlq.ClassUnknownEventType},
		{"unknown-other", []byte(`{"event_id":"unknown-other","event_type":"INVOICE_PAID","project_id":"1"}`), dlq.ClassUnknownEventType},
		{"ghost", task("ghost", claimx.EventCustomTaskAssigned, "999999999"), dlq.ClassNotFound},
		{"too-deep", []byte(`{"event_id":"too-deep","event_type":"CUSTOM_TASK_ASSIGNED","project_id":"1","task_assignment_id":1,"raw_data":{"d":` + strings.Repeat(`{"d":`, 100) + `1` + strings.Repeat(`}`, 101) + `}`), dlq.ClassTooDeep},
	}
	var recs []*kgo.Record
	for _, p := range poison {
		recs = append(recs, &kgo.Record{Topic: kafka.TopicEvents, Key: []byte("1"), Value: p.value})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	publishWorld(t, ctx, cl, s, sim.GenerateOptions{})

	r := runWorker(t, Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: &failingKey{Client: cx, aid: broken}, Orchestrator: orch, Metrics: m,
		Logger: testLogger(), TransactionalID: "poison", MaxBatch: 100, RetryAttempts: 2, PauseBackoffMin: 10 * time.Millisecond, PauseBackoffMax: 50 * time.Millisecond})

	brokenEvents := man.Assignments[broken]
	wantErrors := len(poison) + len(brokenEvents)
	got := decodeErrorRecords(t, readCommitted(t, c.ListenAddrs(), kafka.TopicEnrichmentErrors, wantErrors, 60*time.Second, 500*time.Millisecond))
	if len(got) != wantErrors {
		t.Fatalf("got %d error records, want %d (%d poison, %d of the failing assignment)", len(got), wantErrors, len(poison), len(brokenEvents))
	}
	for _, p := range poison {
		er, ok := got[p.id]
		if !ok {
			er, ok = got[string(p.value)]
		}
		if !ok {
			t.Errorf("%s: no error record", p.id)
			continue
		}
		if er.Class != p.class {
			t.Errorf("%s: class %q, want %q (%s)", p.id, er.Class, p.class, er.Message)
		}
		if orig, whole := er.OriginalBytes(); !whole || string(orig) != string(p.value) {
			t.Errorf("%s: original %q, want the bytes consumed", p.id, orig)
		}
		if er.Worker != DefaultName || er.Handler != "enrich" || er.Topic != kafka.TopicEvents || er.Attempt != 1 {
			t.Errorf("%s: provenance %+v", p.id, er)
		}
	}
	for _, e := range brokenEvents {
		er, ok := got[e.EventID]
		if !ok || er.Class != dlq.ClassAPIUnavailable || !strings.Contains(er.Message, "claimx_api") || !strings.Contains(er.Message, "/customTasks/assignment/") {
			t.Errorf("event %s of the failing assignment: %+v, want an api_unavailable record naming ClaimX and the route", e.EventID, er)
		}
	}

	// Everything else is published once, in order.
	want := man.EventsForTemplate(sim.TemplateITelCabinet)
	out := readCommitted(t, c.ListenAddrs(), trackingTopic, len(want)-len(brokenEvents), 30*time.Second, 500*time.Millisecond)
	seen := map[string]int{}
	for _, o := range out {
		var p struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(o.value, &p); err != nil {
			t.Fatal(err)
		}
		seen[p.EventID]++
	}
	for _, e := range want {
		n := seen[e.EventID]
		if e.AssignmentID == broken {
			if n != 0 {
				t.Errorf("event %s of the failing assignment published %d times", e.EventID, n)
			}
		} else if n != 1 {
			t.Errorf("event %s published %d times, want once", e.EventID, n)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Every consumed event: output, counted skip or error record.
	consumed := int(testutil.ToFloat64(m.EnrichEventsConsumed.WithLabelValues(DefaultName)))
	skipped := int(testutil.ToFloat64(m.Skipped.WithLabelValues(DefaultName, SkipNonTaskEvent)) + testutil.ToFloat64(m.Skipped.WithLabelValues(DefaultName, SkipNoTrigger)))
	if total := len(poison) + s.Len(); consumed != total {
		t.Errorf("consumed %d, want %d", consumed, total)
	}
	if sum := len(out) + skipped + len(got); sum != consumed {
		t.Errorf("outputs %d + skips %d + error records %d = %d, want every consumed event (%d)", len(out), skipped, len(got), sum, consumed)
	}
	if testutil.ToFloat64(m.Skipped.WithLabelValues(DefaultName, SkipNonTaskEvent)) == 0 || testutil.ToFloat64(m.Skipped.WithLabelValues(DefaultName, SkipNoTrigger)) == 0 {
		t.Error("the world's non-task events and other templates were not counted as skips")
	}
	failed := 0
	for _, reason := range classes {
		failed += int(testutil.ToFloat64(m.EnrichEventsFailed.WithLabelValues(DefaultName, reason)))
	}
	if failed != len(got) {
		t.Errorf("kpipe_enrich_events_failed_total sums to %d, want %d", failed, len(got))
	}
}

// TestHugeEvent: events of almost a megabyte that fail get an error record
// within the size limit, once: a JSON one whole, a non-UTF-8 one (which the
// record must keep as base64, a third larger) cut, with its length and
// SHA-256. The events after them are processed.
func TestHugeEvent(t *testing.T) {
	c := newCluster(t)
	s, base := startSim(t, 13, 4)
	_, m := newMetrics()
	orch, cx := components(t, base, m, testLogger())
	cl := newClient(t, c.ListenAddrs(), kgo.ProducerBatchMaxBytes(2<<20))
	ctx := t.Context()
	event := func(id, fill string) []byte {
		return []byte(`{"event_id":"` + id + `","event_type":"CUSTOM_TASK_ASSIGNED","project_id":"1","task_assignment_id":null,"raw_data":{"notes":"` +
			strings.Repeat(fill, 950_000/len(fill)) + `"}}`)
	}
	hugeJSON, hugeBinary := event("huge-json", "x"), event("huge-binary", "x\xff")
	if err := cl.ProduceSync(ctx,
		&kgo.Record{Topic: kafka.TopicEvents, Key: []byte("1"), Value: hugeJSON},
		&kgo.Record{Topic: kafka.TopicEvents, Key: []byte("1"), Value: hugeBinary},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	publishWorld(t, ctx, cl, s, sim.GenerateOptions{})
	r := runWorker(t, Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, Logger: testLogger(), TransactionalID: "huge"})

	got := readCommitted(t, c.ListenAddrs(), trackingTopic, s.Manifest().Count(sim.TemplateITelCabinet), 60*time.Second, 500*time.Millisecond)
	checkTracking(t, s, got)
	errs := readCommitted(t, c.ListenAddrs(), kafka.TopicEnrichmentErrors, 2, 10*time.Second, 500*time.Millisecond)
	if len(errs) != 2 {
		t.Fatalf("%d error records, want 2", len(errs))
	}
	for i, want := range [][]byte{hugeJSON, hugeBinary} {
		if n := len(errs[i].value); n > DefaultMaxRecordBytes {
			t.Errorf("error record %d of %d bytes, over the limit %d", i, n, DefaultMaxRecordBytes)
		}
		var er dlq.Record
		if err := json.Unmarshal(errs[i].value, &er); err != nil {
			t.Fatal(err)
		}
		orig, whole := er.OriginalBytes()
		sum := sha256.Sum256(want)
		switch {
		case er.Class != dlq.ClassMalformed || er.OriginalLength != len(want):
			t.Errorf("error record %d: class %q, length %d; want malformed, %d", i, er.Class, er.OriginalLength, len(want))
		case i == 0 && (!whole || string(orig) != string(want)):
			t.Errorf("the JSON event's record does not keep it whole (truncated %v)", er.OriginalTruncated)
		case i == 1 && (whole || !er.OriginalTruncated || er.OriginalSHA256 != hex.EncodeToString(sum[:]) || !strings.HasPrefix(string(want), string(orig))):
			t.Errorf("the binary event's record: truncated %v, sha256 %q, prefix %v; want cut with the SHA-256", er.OriginalTruncated, er.OriginalSHA256, strings.HasPrefix(string(want), string(orig)))
		}
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestRefusedRecords: when Kafka refuses the plugins' records (the output
// topic's max.message.bytes is smaller than they are), each event gets a
// too_large error record instead, after one aborted transaction per poll,
// and the worker goes on; when it refuses the error records too, each
// retry cuts them smaller, and past that Run ends with ErrRecordRefused.
func TestRefusedRecords(t *testing.T) {
	c := newCluster(t)
	s, base := startSim(t, 17, 3)
	_, m := newMetrics()
	orch, cx := components(t, base, m, testLogger())
	adm := kadm.NewClient(newClient(t, c.ListenAddrs()))
	small := "200"
	if _, err := adm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &small}}, trackingTopic); err != nil {
		t.Fatal(err)
	}
	publishWorld(t, t.Context(), newClient(t, c.ListenAddrs()), s, sim.GenerateOptions{})
	r := runWorker(t, Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, Logger: testLogger(), TransactionalID: "refused"})
	want := s.Manifest().Count(sim.TemplateITelCabinet)
	errs := decodeErrorRecords(t, readCommitted(t, c.ListenAddrs(), kafka.TopicEnrichmentErrors, want, 60*time.Second, 500*time.Millisecond))
	if len(errs) != want {
		t.Fatalf("%d error records, want one per 32513 event (%d)", len(errs), want)
	}
	for id, er := range errs {
		if er.Class != dlq.ClassTooLarge || !strings.Contains(er.Message, trackingTopic) {
			t.Fatalf("event %s: class %q message %q, want too_large naming the topic", id, er.Class, er.Message)
		}
	}
	r.alive(t)
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Now the error topic refuses them too: bounded, then a typed error.
	tiny := "300"
	if _, err := adm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &tiny}}, kafka.TopicEnrichmentErrors); err != nil {
		t.Fatal(err)
	}
	if err := newClient(t, c.ListenAddrs()).ProduceSync(t.Context(), &kgo.Record{Topic: kafka.TopicEvents, Key: []byte("1"), Value: []byte("not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r = runWorker(t, Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, Logger: testLogger(), TransactionalID: "refused"})
	if err := r.wait(t, 60*time.Second); !errors.Is(err, ErrRecordRefused) {
		t.Fatalf("Run = %v, want ErrRecordRefused", err)
	}
	if rerr := r.w.Ready(t.Context()); !errors.Is(rerr, ErrRecordRefused) {
		t.Errorf("Ready = %v after the fatal error, want it to say why", rerr)
	}
}

// failOn is a plugin that fails for one event.
type failOn struct{ id string }

func (f *failOn) Name() string                { return "fail_on" }
func (f *failOn) Close(context.Context) error { return nil }
func (f *failOn) Handle(_ context.Context, ev *plugin.Enriched, _ *plugin.Output) error {
	if ev.Event.EventID == f.id {
		return errors.New("cannot handle this one")
	}
	return nil
}

// TestPluginFailure: a plugin failing for an event gives the event a
// plugin_failed error record naming the plugin; the other plugins' records
// for it are still published.
func TestPluginFailure(t *testing.T) {
	c := newCluster(t)
	s, base := startSim(t, 31, 4)
	_, m := newMetrics()
	cfg, err := config.Load("../../config", config.WithEnv(testEnv(base)))
	if err != nil {
		t.Fatal(err)
	}
	victim := s.Manifest().EventsForTemplate(sim.TemplateITelCabinet)[0].EventID
	reg := plugin.NewRegistry()
	reg.MustRegister(plugin.KindTaskTrigger, plugin.NewTaskTriggerFactory(), plugin.TaskTriggerModule)
	reg.MustRegister("fail_on", plugin.FactoryFunc(func(*config.Plugin, plugin.Deps) (plugin.Plugin, error) { return &failOn{id: victim}, nil }))
	plugins := append([]*config.Plugin{{Name: "fail_on", Module: "fail_on", Enabled: true}}, cfg.Plugins...)
	orch, err := plugin.NewOrchestrator(t.Context(), reg, plugins, plugin.Deps{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	_, cx := components(t, base, m, testLogger())
	publishWorld(t, t.Context(), newClient(t, c.ListenAddrs()), s, sim.GenerateOptions{})
	runWorker(t, Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, Logger: testLogger(), TransactionalID: "plugin-fail"})
	checkTracking(t, s, readCommitted(t, c.ListenAddrs(), trackingTopic, s.Manifest().Count(sim.TemplateITelCabinet), 60*time.Second, 500*time.Millisecond))
	errs := decodeErrorRecords(t, readCommitted(t, c.ListenAddrs(), kafka.TopicEnrichmentErrors, 1, 10*time.Second, 500*time.Millisecond))
	er, ok := errs[victim]
	if len(errs) != 1 || !ok || er.Class != dlq.ClassPluginFailed || !strings.Contains(er.Message, "fail_on") {
		t.Fatalf("error records %+v, want one plugin_failed record for %s naming the plugin", errs, victim)
	}
}

// failingRows is the ClaimX client with every row failing as unavailable
// (a 500), while the API itself answers (Ping works).
type failingRows struct{ *claimx.Client }

func (f failingRows) fail(route string) error {
	return &httpconn.Error{Connection: "claimx_api", Method: http.MethodGet, URL: route, Status: http.StatusInternalServerError, Retryable: true, Attempts: 2}
}

func (f failingRows) TaskAssignmentRaw(_ context.Context, aid int64) (*claimx.RawRow, error) {
	return nil, f.fail(fmt.Sprintf("/customTasks/assignment/%d?full=true", aid))
}

func (f failingRows) ProjectRaw(_ context.Context, pid string) (*claimx.RawRow, error) {
	return nil, f.fail("/export/project/" + pid)
}

// TestRowsFailingWhileClaimXAnswers: a fresh worker whose every row fails
// while ClaimX answers pings spends each event's retry budget and sends
// the task events to the error topic as api_unavailable, instead of
// waiting for ever as it does while ClaimX answers nothing.
func TestRowsFailingWhileClaimXAnswers(t *testing.T) {
	c := newCluster(t)
	s, base := startSim(t, 37, 3)
	_, m := newMetrics()
	orch, cx := components(t, base, m, testLogger())
	publishWorld(t, t.Context(), newClient(t, c.ListenAddrs()), s, sim.GenerateOptions{})
	r := runWorker(t, Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: failingRows{cx}, Orchestrator: orch, Metrics: m, Logger: testLogger(),
		TransactionalID: "failing-rows", RetryAttempts: 2, PauseBackoffMin: 10 * time.Millisecond, PauseBackoffMax: 50 * time.Millisecond})
	tasks := s.Manifest().Count(0)
	errs := decodeErrorRecords(t, readCommitted(t, c.ListenAddrs(), kafka.TopicEnrichmentErrors, tasks, 60*time.Second, 500*time.Millisecond))
	if len(errs) != tasks {
		t.Fatalf("%d error records, want one per task event (%d)", len(errs), tasks)
	}
	for id, er := range errs {
		if er.Class != dlq.ClassAPIUnavailable {
			t.Fatalf("event %s: class %q, want api_unavailable", id, er.Class)
		}
	}
	waitFor(t, 30*time.Second, "ready after the poll", func() bool { return r.w.Ready(t.Context()) == nil })
}
