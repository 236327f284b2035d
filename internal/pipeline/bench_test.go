package pipeline

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/delta"
	"kpipe/internal/jsonx"
	"kpipe/internal/sim"
)

// benchRegistry is DefaultRegistry with the lookup and writer configuration
// changed.
func benchRegistry(lookup func(*LookupConfig), writer func(*DeltaWriterConfig)) *Registry {
	r := NewRegistry()
	r.MustRegister(TypeTransform, transformFactory)
	r.MustRegister(TypeValidation, validationFactory)
	lf := lookupFactory.(*typedFactory[LookupConfig, *LookupConfig])
	r.MustRegister(TypeLookup, TypedFactory(lookupDefaults, func(c *LookupConfig, d Deps) (Handler, error) {
		if lookup != nil {
			lookup(c)
		}
		return lf.build(c, d)
	}))
	wf := deltaWriterFactory.(*typedFactory[DeltaWriterConfig, *DeltaWriterConfig])
	r.MustRegister(TypeDeltaWriter, TypedFactory(deltaWriterDefaults, func(c *DeltaWriterConfig, d Deps) (Handler, error) {
		if writer != nil {
			writer(c)
		}
		return wf.build(c, d)
	}))
	return r
}

// BenchmarkWorker measures the whole tracking worker: kfake broker, the
// simulator over HTTP, the handler chain of workers.yaml and a real Delta
// table on local disk. Each iteration consumes a fresh stream of events
// from three partitions until the table holds them all; events/s is the
// figure to read. Run with -benchtime=1x (or 3x).
//
//	cache_hit:    lookup of /api/v1/tasks/32513, always in the 60 s cache
//	cache_hit_dedupe_off: the same without the delta_writer's dedupe
//	              (workers.yaml turns it on), for its cost
//	latency_20ms: lookup of each event's assignment, 20 ms per API call,
//	              no cache (calls of one batch run concurrently)
func BenchmarkWorker(b *testing.B) {
	const events = 60000
	cases := []struct {
		name    string
		faults  sim.Faults
		lookup  func(*LookupConfig)
		writer  func(*DeltaWriterConfig)
		nEvents int
	}{
		{name: "cache_hit", nEvents: events},
		{name: "cache_hit_dedupe_off", nEvents: events, writer: func(c *DeltaWriterConfig) { c.Dedupe = nil }},
		{name: "latency_20ms", nEvents: events / 4, faults: sim.Faults{LatencyMin: 20 * time.Millisecond}, lookup: func(c *LookupConfig) {
			c.Endpoint = "/customTasks/assignment/{assignment_id}"
			c.PathParams = map[string]string{"assignment_id": "assignment_id"}
			c.QueryParams = nil
			c.CacheTTL = 0
			c.MaxConcurrency = 64
		}},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, sim.Options{Seed: 11, Projects: 400})
			e.cfg.Connections["claimx_api"].MaxConcurrency = 128
			base := e.entries()
			m := e.sim.Manifest()
			// Payloads of the world's events, repeated with fresh event ids.
			payloads := make([][]byte, bc.nEvents)
			keys := make([][]byte, bc.nEvents)
			for i := range payloads {
				en := base[i%len(base)]
				en.EventID = fmt.Sprintf("%s-%d", en.EventID, i/len(base))
				en.At = liveTime(i)
				payloads[i] = trackingPayload(en, m.Assignments[en.AssignmentID][0].At)
				keys[i] = []byte(fmt.Sprint(en.AssignmentID))
			}
			if err := e.sim.SetFaults(bc.faults); err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ctx := b.Context()
				topic := fmt.Sprintf("%s.bench%d", inputTopic, i)
				if err := e.cluster.CreateTopic(topic, 3, nil); err != nil {
					b.Fatal(err)
				}
				recs := make([]*kgo.Record, len(payloads))
				for j := range payloads {
					recs[j] = &kgo.Record{Topic: topic, Key: keys[j], Value: payloads[j]}
				}
				e.produce(ctx, recs...)
				wcfg := *e.worker
				wcfg.InputTopic = topic
				wcfg.ConsumerGroup = topic
				dir := b.TempDir()
				s := deltaSink(b, dir)
				s.reg = benchRegistry(bc.lookup, bc.writer)
				w, err := NewWorker(ctx, &wcfg, e.kopts(), s.reg, s.deps(e.deps()))
				if err != nil {
					b.Fatal(err)
				}
				rows := e.metrics.WorkerDeltaWrites.WithLabelValues(workerName)
				before := counterValue(rows)
				b.StartTimer()
				start := time.Now()
				stop := runWorker(b, ctx, w)
				for counterValue(rows)-before < float64(len(payloads)) {
					time.Sleep(2 * time.Millisecond)
				}
				total += time.Since(start)
				b.StopTimer()
				if err := stop(); err != nil {
					b.Fatal(err)
				}
				_ = w.Close(ctx)
			}
			b.ReportMetric(float64(len(payloads)*b.N)/total.Seconds(), "events/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// liveTime is the event time of the i-th event of a live stream: the
// simulator's timeline spans months, a live stream at these rates spans
// seconds, so a flush touches one or two day partitions, not hundreds.
func liveTime(i int) time.Time {
	return time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
}

// BenchmarkChain measures the handler chain alone on decoded events (no
// Kafka): transform, validation, lookup from the cache and the Delta row,
// flushing to a table on local disk every 10,000 rows.
func BenchmarkChain(b *testing.B) {
	e := newEnv(b, sim.Options{Seed: 11, Projects: 100})
	base := e.entries()
	m := e.sim.Manifest()
	payloads := make([][]byte, len(base))
	for i, en := range base {
		en.At = liveTime(i)
		payloads[i] = trackingPayload(en, m.Assignments[en.AssignmentID][0].At)
	}
	ctx := b.Context()
	s := deltaSink(b, b.TempDir())
	deps := s.deps(e.deps())
	chain, err := BuildChain(ctx, s.reg, e.worker.EnrichmentHandlers, deps)
	if err != nil {
		b.Fatal(err)
	}
	fl := chain.Flusher()
	b.ReportAllocs()
	b.ResetTimer()
	evs := make([]*Event, 0, 100)
	var off int64
	for i := 0; i < b.N; i++ {
		raw := payloads[i%len(payloads)]
		fields, err := jsonx.DecodeObject(raw, 0)
		if err != nil {
			b.Fatal(err)
		}
		evs = append(evs, &Event{Fields: fields, Raw: raw, Topic: inputTopic, Offset: off, Received: time.Now()})
		off++
		if len(evs) == cap(evs) || i == b.N-1 {
			if _, _, err := chain.Process(ctx, evs, nil); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
			if due, _ := fl.FlushDue(time.Now()); due || i == b.N-1 {
				if _, err := fl.Flush(ctx, []Mark{{Topic: inputTopic, Partition: 0, Offset: off - 1}}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// nopTable is a table that keeps nothing: it isolates the pipeline's own
// cost from the Delta append. Its schema is the table definition's, without
// the inferred struct columns (as a fresh table starts).
type nopTable struct {
	schema *delta.StructType
	rows   int
}

func newNopTable(b *testing.B) *nopTable {
	def, err := tableDefs("itel_cabinet_task_tracking")
	if err != nil {
		b.Fatal(err)
	}
	s := &delta.StructType{}
	for _, f := range def.Schema.Fields {
		if !slices.Contains(def.Inferred, f.Name) {
			s.Fields = append(s.Fields, f)
		}
	}
	return &nopTable{schema: s}
}

func (t *nopTable) Schema(context.Context) (*delta.StructType, error) { return t.schema, nil }
func (t *nopTable) Append(_ context.Context, rows delta.Rows, _ map[string]int64, opts appendOptions) (int64, []*delta.SchemaError, error) {
	if opts.beforeCommit != nil {
		if err := opts.beforeCommit(nil, 0); err != nil {
			return 0, nil, err
		}
	}
	t.rows += rows.Len()
	return 0, nil, nil
}
func (t *nopTable) TxnVersions(context.Context, []string) (map[string]int64, error) {
	return map[string]int64{}, nil
}
func (t *nopTable) Close(context.Context) error { return nil }

// BenchmarkChainNoDelta measures the pipeline's own cost per event: decode,
// transform, validation, lookup from the cache and building the Delta row,
// in batches of 100, with a table that discards what it is given (no
// Parquet, no commit). ns/op and allocs/op are per event.
func BenchmarkChainNoDelta(b *testing.B) {
	e := newEnv(b, sim.Options{Seed: 11, Projects: 100})
	base := e.entries()
	m := e.sim.Manifest()
	payloads := make([][]byte, len(base))
	for i, en := range base {
		en.At = liveTime(i)
		payloads[i] = trackingPayload(en, m.Assignments[en.AssignmentID][0].At)
	}
	ctx := b.Context()
	tbl := newNopTable(b)
	chain, err := BuildChain(ctx, registryWith(tbl), e.worker.EnrichmentHandlers, e.deps())
	if err != nil {
		b.Fatal(err)
	}
	defer chain.Close(ctx)
	fl := chain.Flusher()
	// Warm the lookup cache: the first call goes to the simulator.
	warm, err := jsonx.DecodeObject(payloads[0], 0)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := chain.Process(ctx, []*Event{{Fields: warm, Raw: payloads[0], Topic: inputTopic}}, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := fl.Flush(ctx, []Mark{{Topic: inputTopic, Partition: 0, Offset: 0}}); err != nil {
		b.Fatal(err)
	}
	hint := len(warm) // as the worker sizes events after the first batch
	b.ReportAllocs()
	b.ResetTimer()
	evs := make([]*Event, 0, 100)
	off := int64(1)
	for i := 0; i < b.N; i++ {
		raw := payloads[i%len(payloads)]
		fields, err := jsonx.DecodeObject(raw, hint)
		if err != nil {
			b.Fatal(err)
		}
		evs = append(evs, &Event{Fields: fields, Raw: raw, Topic: inputTopic, Offset: off, Received: time.Now()})
		off++
		if len(evs) == cap(evs) || i == b.N-1 {
			out, failed, err := chain.Process(ctx, evs, nil)
			if err != nil {
				b.Fatal(err)
			}
			if len(out) != len(evs) || len(failed) != 0 {
				b.Fatalf("%d out, %d failed of %d", len(out), len(failed), len(evs))
			}
			evs = evs[:0]
			if due, _ := fl.FlushDue(time.Now()); due || i == b.N-1 {
				if _, err := fl.Flush(ctx, []Mark{{Topic: inputTopic, Partition: 0, Offset: off - 1}}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
