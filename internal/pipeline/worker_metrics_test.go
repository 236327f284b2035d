package pipeline

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/dlq"
	"kpipe/internal/sim"
)

// committedOffsets sums the offsets the worker's group has committed on the
// input topic.
func committedOffsets(t *testing.T, e *env) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).FetchOffsets(t.Context(), e.worker.ConsumerGroup)
	if err != nil {
		return 0 // no group yet: nothing committed
	}
	var sum int64
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == inputTopic && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// Storage unavailable (DESIGN.md's errors table): the worker retries with
// backoff, commits no offset past what is durable, sends nothing to the
// error topic, reports not-ready and the storage gauge at 0 — and when the
// storage is back it writes everything, once.
func TestWorkerStorageUnavailable(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 4, Projects: 20})
	want := e.entries()
	if len(want) < 20 {
		t.Fatalf("world too small: %d", len(want))
	}
	half := len(want) / 2
	tbl := newMemTable()
	w := e.newWorker(t, memSink(tbl, func(c *DeltaWriterConfig) { c.FlushInterval = 0.1 }))
	stop := runWorker(t, ctx, w)

	e.produceTracking(ctx, want[:half])
	waitFor(t, 20*time.Second, "the first half", func() bool { return len(tbl.snapshot()) == half })
	waitFor(t, 10*time.Second, "offsets of the first half", func() bool { return committedOffsets(t, e) == int64(half) })
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("Ready before the outage: %v", err)
	}
	up := e.metrics.DeltaStorageUp.WithLabelValues("itel_cabinet_task_tracking")

	tbl.setDown(true)
	e.produceTracking(ctx, want[half:])
	waitFor(t, 20*time.Second, "the outage to be noticed", func() bool { return w.Ready(ctx) != nil })
	if err := w.Ready(ctx); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "storage") {
		t.Fatalf("Ready during the outage = %v, want ErrNotReady naming the storage", err)
	}
	if testutil.ToFloat64(up) != 0 {
		t.Fatalf("kpipe_delta_storage_up = %v during the outage, want 0", testutil.ToFloat64(up))
	}
	failuresBefore := testutil.ToFloat64(e.metrics.WorkerDeltaWriteErrors.WithLabelValues(workerName))
	waitFor(t, 10*time.Second, "retries", func() bool {
		return testutil.ToFloat64(e.metrics.WorkerDeltaWriteErrors.WithLabelValues(workerName)) > failuresBefore
	})
	time.Sleep(500 * time.Millisecond)
	if got := committedOffsets(t, e); got != int64(half) {
		t.Fatalf("committed offsets moved to %d during the outage, want %d", got, half)
	}
	if n := len(tbl.snapshot()); n != half {
		t.Fatalf("table holds %d rows during the outage, want %d", n, half)
	}
	if got := testutil.ToFloat64(e.metrics.Errors.WithLabelValues(workerName, "storage")); got < 1 {
		t.Fatalf("storage errors metric %v, want ≥ 1", got)
	}

	tbl.setDown(false)
	waitFor(t, 30*time.Second, "every row after the outage", func() bool { return len(tbl.snapshot()) == len(want) })
	waitFor(t, 10*time.Second, "ready again", func() bool { return w.Ready(ctx) == nil })
	if testutil.ToFloat64(up) != 1 {
		t.Fatalf("kpipe_delta_storage_up = %v after the outage, want 1", testutil.ToFloat64(up))
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkTimeline(t, tbl.snapshot(), want)
	if errs := e.readTopic(ctx, errorTopic, -1, 500*time.Millisecond); len(errs) != 0 {
		t.Fatalf("%d error records for a storage outage, want none: %s", len(errs), errs[0].Value)
	}
	if got := committedOffsets(t, e); got != int64(len(want)) {
		t.Fatalf("committed offsets %d after the outage, want %d", got, len(want))
	}
}

// Every worker metric moves when its event happens: rows written to a real
// Delta table, failures of each class, ClaimX API failures.
func TestWorkerMetricsMove(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 6, Projects: 20})
	e.cfg.Connections["claimx_api"].MaxRetries = 0
	want := e.entries()[:30]
	s := deltaSink(t, t.TempDir())
	w := e.newWorker(t, s)
	stop := runWorker(t, ctx, w)
	m := e.metrics
	c := func(cv *prometheus.CounterVec, labels ...string) float64 {
		return testutil.ToFloat64(cv.WithLabelValues(labels...))
	}
	hcount := func(hv *prometheus.HistogramVec, labels ...string) uint64 {
		return histogramCount(hv.WithLabelValues(labels...))
	}
	const table = "itel_cabinet_task_tracking"

	// Rows: the success path.
	e.produceTracking(ctx, want[:20])
	waitFor(t, 30*time.Second, "20 rows", func() bool { return len(s.rows()) == 20 })
	waitFor(t, 10*time.Second, "processed", func() bool { return c(m.WorkerMessagesProcessed, workerName) == 20 })
	for _, chk := range []struct {
		name string
		got  float64
		ok   func(float64) bool
	}{
		{"itel_worker_messages_consumed_total", c(m.WorkerMessagesConsumed, workerName), eq(20)},
		{"itel_worker_delta_writes_total", c(m.WorkerDeltaWrites, workerName), eq(20)},
		{"itel_worker_claimx_api_calls_total", c(m.WorkerClaimXAPICalls, workerName), ge(1)},
		{"kpipe_lookup_cache_misses_total", c(m.CacheMisses, workerName, TypeLookup), ge(1)},
		{"kpipe_lookup_cache_hits_total", c(m.CacheHits, workerName, TypeLookup), ge(1)},
		{"kpipe_delta_rows_written_total", c(m.DeltaRowsWritten, table), eq(20)},
		{"kpipe_delta_files_written_total", c(m.DeltaFilesWritten, table), ge(1)},
		{"kpipe_delta_bytes_written_total", c(m.DeltaBytesWritten, table), ge(1000)},
		{"kpipe_delta_schema_evolutions_total", c(m.DeltaSchemaEvolutions, table), ge(1)},
		{"kpipe_delta_table_version", testutil.ToFloat64(m.DeltaTableVersion.WithLabelValues(table)), ge(1)},
		{"kpipe_handler_messages_total{transform,in}", c(m.HandlerMessages, workerName, TypeTransform, "in"), eq(20)},
		{"kpipe_handler_messages_total{delta_writer,in}", c(m.HandlerMessages, workerName, TypeDeltaWriter, "in"), eq(20)},
	} {
		if !chk.ok(chk.got) {
			t.Errorf("%s = %v", chk.name, chk.got)
		}
	}
	var byStatus float64
	for _, st := range []string{"assigned", "in_progress", "completed", "reassigned", "reopened", "cancelled", "other"} {
		byStatus += c(m.RowsByStatus, workerName, st)
	}
	if byStatus != 20 {
		t.Errorf("kpipe_worker_rows_by_status_total sums to %v, want 20", byStatus)
	}
	for name, n := range map[string]uint64{
		"itel_worker_processing_latency_seconds":  hcount(m.WorkerProcessingLatency, workerName),
		"itel_worker_claimx_api_latency_seconds":  hcount(m.WorkerClaimXAPILatency, workerName),
		"kpipe_handler_latency_seconds{lookup}":   hcount(m.HandlerLatency, workerName, TypeLookup),
		"kpipe_delta_commit_latency_seconds":      hcount(m.DeltaCommitLatency, table),
		"kpipe_worker_batch_size":                 hcount(m.BatchSize, workerName),
		"kpipe_handler_latency_seconds{delta_wr}": hcount(m.HandlerLatency, workerName, TypeDeltaWriter),
	} {
		if n == 0 {
			t.Errorf("%s observed nothing", name)
		}
	}
	if testutil.CollectAndCount(m.ConsumerLag) == 0 {
		t.Error("kpipe_consumer_lag has no series")
	}

	// Failures: a validation failure and malformed JSON.
	bad, _ := json.Marshal(map[string]any{"event_id": "bad", "event_type": "CUSTOM_TASK_ASSIGNED", "project_id": "1", "task_id": 7, "task_status": "assigned", "timestamp": "2026-01-05T08:00:00Z"})
	e.produce(ctx, &kgo.Record{Key: []byte("1"), Value: bad}, &kgo.Record{Key: []byte("2"), Value: []byte("{not json")})
	waitFor(t, 20*time.Second, "failures counted", func() bool { return c(m.WorkerMessagesFailed, workerName) == 2 })
	if c(m.Errors, workerName, dlq.ClassValidation) != 1 || c(m.Errors, workerName, dlq.ClassMalformed) != 1 {
		t.Errorf("errors by class: validation %v, malformed %v", c(m.Errors, workerName, dlq.ClassValidation), c(m.Errors, workerName, dlq.ClassMalformed))
	}
	waitFor(t, 10*time.Second, "error records counted", func() bool { return c(m.ErrorRecords, workerName, errorTopic) == 2 })

	// The ClaimX API fails: with the cache emptied by a fresh worker, the
	// lookup calls and fails.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetFaults(sim.Faults{ErrorRates: map[int]float64{500: 1}}); err != nil {
		t.Fatal(err)
	}
	w2 := e.newWorker(t, s)
	stop = runWorker(t, ctx, w2)
	e.produceTracking(ctx, want[20:])
	waitFor(t, 30*time.Second, "rows during the API outage", func() bool { return len(s.rows()) == 30 })
	if got := c(m.WorkerClaimXAPIErrors, workerName); got < 1 {
		t.Errorf("itel_worker_claimx_api_errors_total = %v, want ≥ 1", got)
	}
	if got := c(m.Errors, workerName, dlq.ClassLookup); got < 1 {
		t.Errorf("lookup errors = %v, want ≥ 1", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func eq(v float64) func(float64) bool { return func(g float64) bool { return g == v } }
func ge(v float64) func(float64) bool { return func(g float64) bool { return g >= v } }

// histogramCount is how many observations a histogram series holds.
func histogramCount(o prometheus.Observer) uint64 {
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}
