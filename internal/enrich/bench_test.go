package enrich

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

// memFetcher serves rows fetched once from the simulator: lookups cost a
// map read, as cached lookups do.
type memFetcher struct {
	mu    sync.Mutex
	cx    *claimx.Client
	tasks map[int64]*claimx.RawRow
	projs map[string]*claimx.RawRow
}

func (f *memFetcher) TaskAssignmentRaw(ctx context.Context, id int64) (*claimx.RawRow, error) {
	f.mu.Lock()
	r, ok := f.tasks[id]
	f.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := f.cx.TaskAssignmentRaw(ctx, id)
	if err == nil {
		f.mu.Lock()
		f.tasks[id] = r
		f.mu.Unlock()
	}
	return r, err
}

func (f *memFetcher) ProjectRaw(ctx context.Context, id string) (*claimx.RawRow, error) {
	f.mu.Lock()
	r, ok := f.projs[id]
	f.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := f.cx.ProjectRaw(ctx, id)
	if err == nil {
		f.mu.Lock()
		f.projs[id] = r
		f.mu.Unlock()
	}
	return r, err
}

// worldRecords renders a simulated world as consumed records.
func worldRecords(b *testing.B, s *sim.Sim) []*kgo.Record {
	var recs []*kgo.Record
	err := s.Generate(b.Context(), sim.GenerateOptions{}, func(_ context.Context, k, v []byte) error {
		recs = append(recs, &kgo.Record{Topic: kafka.TopicEvents, Key: k, Value: v, Offset: int64(len(recs))})
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return recs
}

// BenchmarkEnrich measures events/s through the enrichment worker with
// cached lookups:
//
//   - process: parse, cached lookups, plugins and payload encoding, in
//     polls of 1000 events (no broker);
//   - kafka: the whole worker on an in-process kfake broker, one transaction
//     per poll, from claimx.events to itel.cabinet.task.tracking.
func BenchmarkEnrich(b *testing.B) {
	s, url := startSim(b, 42, 1000) // about 13k events
	_, m := newMetrics()
	orch, cx := components(b, url, m, testLogger())
	recs := worldRecords(b, s)

	b.Run("process", func(b *testing.B) {
		o := Options{Fetcher: cx, Orchestrator: orch, Metrics: m}
		if err := o.defaults(); err != nil {
			b.Fatal(err)
		}
		p, err := newProcessor(o, testLogger())
		if err != nil {
			b.Fatal(err)
		}
		const poll = 1000
		for i := 0; i < len(recs); i += poll { // warm the cache
			if _, err := p.process(b.Context(), recs[i:min(i+poll, len(recs))]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		events := 0
		for b.Loop() {
			for i := 0; i < len(recs); i += poll {
				if _, err := p.process(b.Context(), recs[i:min(i+poll, len(recs))]); err != nil {
					b.Fatal(err)
				}
			}
			events += len(recs)
		}
		b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
	})

	b.Run("kafka", func(b *testing.B) {
		f := &memFetcher{cx: cx, tasks: map[int64]*claimx.RawRow{}, projs: map[string]*claimx.RawRow{}}
		want := s.Manifest().Count(sim.TemplateITelCabinet)
		events := 0
		var elapsed time.Duration
		for b.Loop() {
			b.StopTimer()
			c := newCluster(b)
			cl := newClient(b, c.ListenAddrs())
			for i := 0; i < len(recs); i += 1000 {
				batch := make([]*kgo.Record, 0, 1000)
				for _, r := range recs[i:min(i+1000, len(recs))] {
					batch = append(batch, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value})
				}
				if err := cl.ProduceSync(b.Context(), batch...).FirstErr(); err != nil {
					b.Fatal(err)
				}
			}
			_, wm := newMetrics()
			w, err := New(Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: f, Orchestrator: orch, Metrics: wm, TransactionalID: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(b.Context())
			done := make(chan error, 1)
			published0 := counterValue(m.PluginEventsPublished.WithLabelValues("itel_cabinet_api"))
			b.StartTimer()
			start := time.Now()
			go func() { done <- w.Run(ctx) }()
			for {
				consumed := int(counterValue(wm.EnrichEventsConsumed.WithLabelValues(DefaultName)))
				if consumed >= len(recs) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			elapsed += time.Since(start)
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			_ = w.Close(b.Context())
			if got := int(counterValue(m.PluginEventsPublished.WithLabelValues("itel_cabinet_api")) - published0); got != want {
				b.Fatalf("published %d, want %d", got, want)
			}
			events += len(recs)
			c.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	})
}
