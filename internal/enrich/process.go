package enrich

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/dlq"
	"kpipe/internal/plugin"
)

// Reasons an event goes to the error topic (label values of
// kpipe_enrich_events_failed_total and error_class of the error record).
const (
	ReasonMalformed      = "malformed"       // not JSON, or not a ClaimX event
	ReasonNotFound       = "not_found"       // the API has no such assignment or project
	ReasonAPIUnavailable = "api_unavailable" // 5xx, 429, timeouts, network: after the connection's retries
	ReasonLookupFailed   = "lookup_failed"   // any other API failure (4xx, auth)
)

// ErrorRecord is the value published to claimx.enrichment.errors for an
// event that cannot be enriched: the dead-letter record every worker
// publishes, so that kpipe dlq replay serves them all.
type ErrorRecord = dlq.Record

// taskEntry is a cached task-assignment row and when it was last updated.
type taskEntry struct {
	ent     *plugin.Entity
	updated time.Time
}

// freshFor reports whether the row can stand for an event at t: a row last
// updated before the event predates it and would show an older task.
func (e *taskEntry) freshFor(t time.Time) bool {
	return e.updated.IsZero() || t.IsZero() || !e.updated.Before(t)
}

// item is one consumed record on its way through a batch.
type item struct {
	rec    *kgo.Record
	ev     claimx.Event
	raw    claimx.Row
	reason string
	err    error
}

// batch is the outcome of one poll: what to produce, in order.
type batch struct {
	out    plugin.Output
	send   []*kgo.Record
	failed map[string]int
	// firstErr is the first failure of the batch, for the log.
	firstErr error
}

type job struct {
	aid  int64
	pid  string
	task *taskEntry
	proj *plugin.Entity
	err  error
}

type taskResult struct {
	e   *taskEntry
	err error
}

type projectResult struct {
	e   *plugin.Entity
	err error
}

// processor turns a poll's records into the records to produce. It is used
// by one goroutine at a time (the worker loop); its lookups fan out.
type processor struct {
	o        Options
	log      *slog.Logger
	tasks    *otter.Cache[int64, *taskEntry]
	projects *otter.Cache[string, *plugin.Entity]

	failedC    map[string]prometheus.Counter
	taskHits   prometheus.Counter
	taskMiss   prometheus.Counter
	projHits   prometheus.Counter
	projMiss   prometheus.Counter
	needTask   map[int64]time.Time
	needProj   map[string]struct{}
	taskRes    map[int64]taskResult
	projRes    map[string]projectResult
	jobs       []job
	items      []item
	b          batch
	enriched   plugin.Enriched
	taskLoader otter.Loader[int64, *taskEntry]
	projLoader otter.Loader[string, *plugin.Entity]
}

func newProcessor(o Options, log *slog.Logger) (*processor, error) {
	tasks, err := otter.New(&otter.Options[int64, *taskEntry]{
		MaximumSize:      o.CacheSize,
		ExpiryCalculator: otter.ExpiryWriting[int64, *taskEntry](o.CacheTTL),
	})
	if err != nil {
		return nil, fmt.Errorf("task cache: %w", err)
	}
	projects, err := otter.New(&otter.Options[string, *plugin.Entity]{
		MaximumSize:      o.CacheSize,
		ExpiryCalculator: otter.ExpiryWriting[string, *plugin.Entity](o.CacheTTL),
	})
	if err != nil {
		return nil, fmt.Errorf("project cache: %w", err)
	}
	m := o.Metrics
	p := &processor{
		o: o, log: log, tasks: tasks, projects: projects,
		failedC:  make(map[string]prometheus.Counter),
		taskHits: m.CacheHits.WithLabelValues(o.Name, "task_assignment"),
		taskMiss: m.CacheMisses.WithLabelValues(o.Name, "task_assignment"),
		projHits: m.CacheHits.WithLabelValues(o.Name, "project"),
		projMiss: m.CacheMisses.WithLabelValues(o.Name, "project"),
		needTask: make(map[int64]time.Time),
		needProj: make(map[string]struct{}),
		taskRes:  make(map[int64]taskResult),
		projRes:  make(map[string]projectResult),
		b:        batch{failed: make(map[string]int)},
	}
	for _, r := range []string{ReasonMalformed, ReasonNotFound, ReasonAPIUnavailable, ReasonLookupFailed} {
		p.failedC[r] = m.EnrichEventsFailed.WithLabelValues(o.Name, r)
	}
	p.taskLoader = otter.LoaderFunc[int64, *taskEntry](func(ctx context.Context, aid int64) (*taskEntry, error) {
		row, err := o.Fetcher.TaskAssignment(ctx, aid)
		if err != nil {
			return nil, err
		}
		updated, _ := row.Time("updated_at")
		return &taskEntry{ent: plugin.NewEntity(row), updated: updated}, nil
	})
	p.projLoader = otter.LoaderFunc[string, *plugin.Entity](func(ctx context.Context, pid string) (*plugin.Entity, error) {
		row, err := o.Fetcher.Project(ctx, pid)
		if err != nil {
			return nil, err
		}
		return plugin.NewEntity(row), nil
	})
	return p, nil
}

// process parses, enriches and runs the plugins over recs. The batch it
// returns is valid until the next call. It fails only when ctx ends before
// the lookups do (the transaction must then abort).
func (p *processor) process(ctx context.Context, recs []*kgo.Record) (*batch, error) {
	b := &p.b
	b.out.Reset()
	clear(b.send)
	b.send = b.send[:0]
	clear(b.failed)
	b.firstErr = nil

	if cap(p.items) < len(recs) {
		p.items = make([]item, len(recs))
	}
	items := p.items[:len(recs)]
	// Decoding is most of the CPU work: spread it over the cores in a few
	// contiguous chunks (one goroutine per chunk, not per record).
	chunks := min(runtime.GOMAXPROCS(0), len(recs)/parseChunkMin)
	if chunks <= 1 {
		parse(items, recs)
	} else {
		var wg sync.WaitGroup
		size := (len(recs) + chunks - 1) / chunks
		for lo := 0; lo < len(recs); lo += size {
			hi := min(lo+size, len(recs))
			wg.Go(func() { parse(items[lo:hi], recs[lo:hi]) })
		}
		wg.Wait()
	}

	if err := p.lookup(ctx, items); err != nil {
		return nil, err
	}

	en := &p.enriched
	for i := range items {
		it := &items[i]
		if it.err == nil && it.ev.IsTaskEvent() {
			tr := p.taskRes[it.ev.TaskAssignmentID.Value]
			*en = plugin.Enriched{Event: &it.ev, Raw: it.raw}
			if tr.err != nil {
				it.reason, it.err = reasonOf(tr.err), fmt.Errorf("task assignment %d: %w", it.ev.TaskAssignmentID.Value, tr.err)
			} else {
				en.Task = tr.e.ent
			}
			if it.err == nil && it.ev.ProjectID != "" {
				pr := p.projRes[it.ev.ProjectID]
				if pr.err != nil {
					it.reason, it.err = reasonOf(pr.err), fmt.Errorf("project %s: %w", it.ev.ProjectID, pr.err)
				} else {
					en.Project = pr.e
				}
			}
		} else {
			*en = plugin.Enriched{Event: &it.ev, Raw: it.raw}
		}
		if it.err != nil {
			b.failed[it.reason]++
			if b.firstErr == nil {
				b.firstErr = it.err
			}
			b.send = append(b.send, p.errorRecord(it))
			continue
		}
		n := b.out.Len()
		p.o.Orchestrator.Handle(ctx, en, &b.out)
		b.send = append(b.send, b.out.Records[n:]...)
	}
	clear(items) // drop references to records and rows
	return b, nil
}

// parseChunkMin is the fewest records worth a parsing goroutine.
const parseChunkMin = 256

// parse decodes each record once: the event, and the raw_data of task
// events (the only ones plugins read it from).
func parse(items []item, recs []*kgo.Record) {
	for i, r := range recs {
		it := &items[i]
		*it = item{rec: r}
		ev, err := claimx.ParseEvent(r.Value)
		if err != nil {
			it.reason, it.err = ReasonMalformed, err
			continue
		}
		it.ev = ev
		if !ev.IsTaskEvent() {
			continue
		}
		if it.raw, err = ev.Raw(); err != nil {
			it.reason, it.err = ReasonMalformed, fmt.Errorf("raw_data: %w", err)
		}
	}
}

// lookup fetches the rows the task events of items need: cached rows that
// are fresh enough are used as they are, the others are fetched
// concurrently, at most Concurrency at a time, each key once.
func (p *processor) lookup(ctx context.Context, items []item) error {
	clear(p.needTask)
	clear(p.needProj)
	clear(p.taskRes)
	clear(p.projRes)
	for i := range items {
		it := &items[i]
		if it.err != nil || !it.ev.IsTaskEvent() {
			continue
		}
		aid := it.ev.TaskAssignmentID.Value
		if t, ok := p.needTask[aid]; !ok || it.ev.IngestedAt.After(t) {
			p.needTask[aid] = it.ev.IngestedAt
		}
		if it.ev.ProjectID != "" {
			p.needProj[it.ev.ProjectID] = struct{}{}
		}
	}
	jobs := p.jobs[:0]
	for aid, need := range p.needTask {
		if e, ok := p.tasks.GetIfPresent(aid); ok {
			if e.freshFor(need) {
				p.taskRes[aid] = taskResult{e: e}
				p.taskHits.Inc()
				continue
			}
			p.tasks.Invalidate(aid)
		}
		p.taskMiss.Inc()
		jobs = append(jobs, job{aid: aid})
	}
	for pid := range p.needProj {
		if e, ok := p.projects.GetIfPresent(pid); ok {
			p.projRes[pid] = projectResult{e: e}
			p.projHits.Inc()
			continue
		}
		p.projMiss.Inc()
		jobs = append(jobs, job{pid: pid})
	}
	p.jobs = jobs
	if len(jobs) == 0 {
		return nil
	}
	run := func(j *job) {
		if j.pid != "" {
			j.proj, j.err = p.projects.Get(ctx, j.pid, p.projLoader)
		} else {
			j.task, j.err = p.tasks.Get(ctx, j.aid, p.taskLoader)
		}
	}
	workers := min(len(jobs), p.o.Concurrency)
	if workers == 1 {
		for i := range jobs {
			run(&jobs[i])
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(len(jobs)) {
						return
					}
					run(&jobs[i])
				}
			})
		}
		wg.Wait()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lookups cut short: %w", err)
	}
	for i := range jobs {
		j := &jobs[i]
		if j.pid != "" {
			p.projRes[j.pid] = projectResult{e: j.proj, err: j.err}
		} else {
			p.taskRes[j.aid] = taskResult{e: j.task, err: j.err}
		}
		*j = job{}
	}
	return nil
}

func reasonOf(err error) string {
	switch {
	case claimx.IsNotFound(err):
		return ReasonNotFound
	case claimx.IsRetryable(err):
		return ReasonAPIUnavailable
	}
	return ReasonLookupFailed
}

// errorRecord builds the error-topic record of a failed event.
func (p *processor) errorRecord(it *item) *kgo.Record {
	r := it.rec
	er := ErrorRecord{
		Worker:    p.o.Name,
		Key:       string(r.Key),
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Handler:   "enrich",
		Class:     it.reason,
		Message:   it.err.Error(),
		Attempt:   dlq.AttemptOf(r),
		FailedAt:  time.Now().UTC(),
	}
	er.SetOriginal(r.Value)
	v, err := json.Marshal(er)
	if err != nil {
		er.Original = nil
		v, _ = json.Marshal(er)
	}
	return &kgo.Record{Topic: p.o.ErrorTopic, Key: r.Key, Value: v}
}

// committed records a committed batch in the metrics and logs its failures
// once.
func (p *processor) committed(b *batch) {
	p.o.Orchestrator.Published(&b.out)
	for reason, n := range b.failed {
		p.failedC[reason].Add(float64(n))
	}
	if len(b.failed) > 0 {
		attrs := make([]any, 0, 2*len(b.failed))
		for reason, n := range b.failed {
			attrs = append(attrs, reason, n)
		}
		p.log.Warn("events_to_error_topic", slog.String("topic", p.o.ErrorTopic), slog.Group("by_reason", attrs...), slog.Any("first_err", b.firstErr))
	}
}
