package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/dlq"
	"kpipe/internal/httpconn"
	"kpipe/internal/jsonx"
	"kpipe/internal/lookup"
	"kpipe/internal/plugin"
)

// Reasons of kpipe_skipped_total{worker="claimx_enrichment_worker"}: events
// deliberately not turned into output.
const (
	// SkipNonTaskEvent: a known event type that is not a task event
	// (PROJECT_*, POLICYHOLDER_*, VIDEO_COLLABORATION_*) for which no plugin
	// made a record.
	SkipNonTaskEvent = "non_task_event"
	// SkipNoTrigger: a task event for which no plugin made a record (its
	// task template or status has no trigger).
	SkipNoTrigger = "no_trigger"
)

// knownEventTypes are the event types ClaimX sends.
var knownEventTypes = map[string]bool{
	claimx.EventProjectCreated: true, claimx.EventProjectFileAdded: true, claimx.EventProjectMFNAdded: true,
	claimx.EventCustomTaskAssigned: true, claimx.EventCustomTaskUpdated: true, claimx.EventCustomTaskStatusChanged: true,
	claimx.EventCustomTaskCompleted: true, claimx.EventPolicyholderInvited: true, claimx.EventPolicyholderJoined: true,
	claimx.EventVideoCollaborationInviteSent: true, claimx.EventVideoCollaborationCompleted: true,
}

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
	rec   *kgo.Record
	ev    claimx.Event
	raw   claimx.Row
	task  bool   // a task event: needs the task and project rows
	class string // the error class, when err is set
	err   error
}

// sendMeta says where a record to produce comes from.
type sendMeta struct {
	item   int32 // index in the batch's items
	errRec bool  // an error record (else a plugin's record)
}

// batch is the outcome of one poll: what to produce, in order.
type batch struct {
	out     plugin.Output
	send    []*kgo.Record
	meta    []sendMeta
	failed  map[string]int
	skipped [2]int // SkipNonTaskEvent, SkipNoTrigger
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
	// final: no more attempts in this batch (success, a permanent error,
	// or the retry budget spent).
	final bool
}

type projectResult struct {
	e     *plugin.Entity
	err   error
	final bool
}

// roundResult is what one round of lookups found.
type roundResult struct {
	// pending counts the keys that failed as unavailable and may be tried
	// again.
	pending int
	// answered is true when ClaimX answered at least one request of the
	// round (a row or a permanent error such as 404).
	answered bool
	// lastErr is the last unavailable failure.
	lastErr error
}

// processor turns a poll's records into the records to produce. It is used
// by one goroutine at a time (the worker loop); its lookups fan out.
type processor struct {
	o        Options
	log      *slog.Logger
	tasks    *lookup.Cache[int64, *taskEntry]
	projects *lookup.Cache[string, *plugin.Entity]

	failedC    map[string]prometheus.Counter
	skippedC   [2]prometheus.Counter
	taskHits   prometheus.Counter
	taskMiss   prometheus.Counter
	projHits   prometheus.Counter
	projMiss   prometheus.Counter
	needTask   map[int64]time.Time
	needProj   map[string]struct{}
	taskRes    map[int64]taskResult
	projRes    map[string]projectResult
	attempts   map[any]int
	jobs       []job
	items      []item
	b          batch
	enriched   plugin.Enriched
	taskLoader lookup.LoadFunc[int64, *taskEntry]
	projLoader lookup.LoadFunc[string, *plugin.Entity]

	// lastTask and lastProject are the last keys fetched successfully: the
	// probe that tells "ClaimX is down" from "this key fails".
	lastTask    int64
	lastProject string

	// refused is keyed by source topic/partition/offset.
	refused map[srcKey]refusal
}

type srcKey struct {
	topic     string
	partition int32
	offset    int64
}

func keyOf(r *kgo.Record) srcKey { return srcKey{r.Topic, r.Partition, r.Offset} }

func newProcessor(o Options, log *slog.Logger) (*processor, error) {
	tasks, err := lookup.New[int64, *taskEntry](lookup.Options{TTL: o.CacheTTL, Size: o.CacheSize})
	if err != nil {
		return nil, fmt.Errorf("task cache: %w", err)
	}
	projects, err := lookup.New[string, *plugin.Entity](lookup.Options{TTL: o.CacheTTL, Size: o.CacheSize})
	if err != nil {
		tasks.Close()
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
		attempts: make(map[any]int),
		refused:  make(map[srcKey]refusal),
		b:        batch{failed: make(map[string]int)},
	}
	p.skippedC[0] = m.Skipped.WithLabelValues(o.Name, SkipNonTaskEvent)
	p.skippedC[1] = m.Skipped.WithLabelValues(o.Name, SkipNoTrigger)
	for _, r := range classes {
		p.failedC[r] = m.EnrichEventsFailed.WithLabelValues(o.Name, r)
	}
	p.taskLoader = func(ctx context.Context, aid int64) (*taskEntry, error) {
		row, err := o.Fetcher.TaskAssignmentRaw(ctx, aid)
		if err != nil {
			return nil, err
		}
		updated, _ := row.Time("updated_at")
		ent := plugin.NewEntity(row)
		// Plugins publish the row with when it was fetched: it shows the
		// task at that moment, which may be later than an event's.
		ent.FetchedAt = time.Now().UTC()
		return &taskEntry{ent: ent, updated: updated}, nil
	}
	p.projLoader = func(ctx context.Context, pid string) (*plugin.Entity, error) {
		row, err := o.Fetcher.ProjectRaw(ctx, pid)
		if err != nil {
			return nil, err
		}
		return plugin.NewEntity(row), nil
	}
	return p, nil
}

// process parses, enriches and runs the plugins over recs in one round of
// lookups (no waiting for ClaimX: what fails goes to the error topic). The
// batch it returns is valid until the next call. It fails only when ctx
// ends before the lookups do.
func (p *processor) process(ctx context.Context, recs []*kgo.Record) (*batch, error) {
	p.parse(recs)
	if _, err := p.lookup(ctx, false); err != nil {
		return nil, err
	}
	p.giveUp()
	return p.assemble(ctx), nil
}

// parseChunkMin is the fewest records worth a parsing goroutine.
const parseChunkMin = 256

// parse decodes each record of a new batch once.
func (p *processor) parse(recs []*kgo.Record) {
	clear(p.items) // drop references to the last batch's records and rows
	if cap(p.items) < len(recs) {
		p.items = make([]item, len(recs))
	}
	items := p.items[:len(recs)]
	p.items = items
	clear(p.attempts)
	// Decoding is most of the CPU work: spread it over the cores in a few
	// contiguous chunks (one goroutine per chunk, not per record).
	chunks := min(runtime.GOMAXPROCS(0), len(recs)/parseChunkMin)
	if chunks <= 1 {
		parse(items, recs)
		return
	}
	var wg sync.WaitGroup
	size := (len(recs) + chunks - 1) / chunks
	for lo := 0; lo < len(recs); lo += size {
		hi := min(lo+size, len(recs))
		wg.Go(func() { parse(items[lo:hi], recs[lo:hi]) })
	}
	wg.Wait()
}

// parse decodes each record once: the event, and the raw_data of task
// events (the only ones plugins read it from).
func parse(items []item, recs []*kgo.Record) {
	for i, r := range recs {
		it := &items[i]
		*it = item{rec: r}
		if !utf8.Valid(r.Value) {
			// encoding/json would turn the bad bytes into U+FFFD: an
			// event_type or id changed silently.
			it.class, it.err = dlq.ClassMalformed, errNotUTF8
			continue
		}
		ev, err := claimx.ParseEvent(r.Value)
		if err != nil {
			it.class, it.err = dlq.ClassMalformed, err
			continue
		}
		it.ev = ev
		if !knownEventTypes[ev.EventType] {
			it.class, it.err = dlq.ClassUnknownEventType, fmt.Errorf("event %q: unknown event_type %q", ev.EventID, ev.EventType)
			continue
		}
		if !strings.HasPrefix(ev.EventType, "CUSTOM_TASK_") {
			continue
		}
		if !ev.TaskAssignmentID.Valid {
			it.class, it.err = dlq.ClassMalformed, fmt.Errorf("event %q: %s without task_assignment_id", ev.EventID, ev.EventType)
			continue
		}
		it.task = true
		if it.raw, err = ev.Raw(); err != nil {
			it.class, it.err = dlq.ClassMalformed, fmt.Errorf("raw_data: %w", err)
			if errors.Is(err, jsonx.ErrTooDeep) {
				it.class = dlq.ClassTooDeep
			}
		}
	}
}

// lookup runs one round of lookups for the task events of the batch:
// cached rows that are fresh enough are used as they are, the others are
// fetched concurrently, at most Concurrency at a time, each key once. On a
// retry round only the keys whose last failure was "unavailable" are
// fetched again. It fails only when ctx ends first.
func (p *processor) lookup(ctx context.Context, retry bool) (roundResult, error) {
	var res roundResult
	if !retry {
		clear(p.needTask)
		clear(p.needProj)
		clear(p.taskRes)
		clear(p.projRes)
		for i := range p.items {
			it := &p.items[i]
			if it.err != nil || !it.task {
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
	}
	jobs := p.jobs[:0]
	for aid, need := range p.needTask {
		if r, ok := p.taskRes[aid]; ok && r.final {
			continue
		}
		if !retry {
			if e, ok := p.tasks.Cached(aid); ok {
				if e.freshFor(need) {
					p.taskRes[aid] = taskResult{e: e, final: true}
					p.taskHits.Inc()
					continue
				}
				p.tasks.Invalidate(aid)
			}
			p.taskMiss.Inc()
		}
		jobs = append(jobs, job{aid: aid})
	}
	for pid := range p.needProj {
		if r, ok := p.projRes[pid]; ok && r.final {
			continue
		}
		if !retry {
			if e, ok := p.projects.Cached(pid); ok {
				p.projRes[pid] = projectResult{e: e, final: true}
				p.projHits.Inc()
				continue
			}
			p.projMiss.Inc()
		}
		jobs = append(jobs, job{pid: pid})
	}
	p.jobs = jobs
	if len(jobs) == 0 {
		return res, nil
	}
	lookup.Each(len(jobs), p.o.Concurrency, func(i int) {
		j := &jobs[i]
		if j.pid != "" {
			j.proj, _, j.err = p.projects.Get(ctx, j.pid, p.projLoader)
		} else {
			j.task, _, j.err = p.tasks.Get(ctx, j.aid, p.taskLoader)
		}
	})
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("lookups cut short: %w", err)
	}
	for i := range jobs {
		j := &jobs[i]
		unavailable := j.err != nil && httpconn.IsRetryable(j.err)
		if unavailable {
			res.pending++
			res.lastErr = j.err
		} else {
			res.answered = true
		}
		if j.pid != "" {
			p.projRes[j.pid] = projectResult{e: j.proj, err: j.err, final: !unavailable}
			if j.err == nil {
				p.lastProject = j.pid
			}
		} else {
			p.taskRes[j.aid] = taskResult{e: j.task, err: j.err, final: !unavailable}
			if j.err == nil {
				p.lastTask = j.aid
			}
		}
		*j = job{}
	}
	return res, nil
}

// probe asks ClaimX for the last row it served, uncached, and reports
// whether it answered (a row or a permanent error). With no such row yet it
// pings the API when the Fetcher can (Pinger), else it reports false: the
// worker cannot tell an outage from a failing key.
func (p *processor) probe(ctx context.Context) bool {
	var err error
	switch {
	case p.lastTask != 0:
		_, err = p.o.Fetcher.TaskAssignmentRaw(ctx, p.lastTask)
	case p.lastProject != "":
		_, err = p.o.Fetcher.ProjectRaw(ctx, p.lastProject)
	default:
		pinger, ok := p.o.Fetcher.(Pinger)
		if !ok {
			return false
		}
		err = pinger.Ping(ctx)
	}
	return ctx.Err() == nil && (err == nil || !httpconn.IsRetryable(err))
}

// charge counts one more attempt for every key still failing as
// unavailable; a key that has had Options.RetryAttempts is given up (its
// events go to the error topic). It returns how many keys remain pending.
func (p *processor) charge() (pending int) {
	for aid, r := range p.taskRes {
		if r.final {
			continue
		}
		if p.attempts[aid]++; p.attempts[aid] >= p.o.RetryAttempts {
			r.final = true
			p.taskRes[aid] = r
			continue
		}
		pending++
	}
	for pid, r := range p.projRes {
		if r.final {
			continue
		}
		if p.attempts[pid]++; p.attempts[pid] >= p.o.RetryAttempts {
			r.final = true
			p.projRes[pid] = r
			continue
		}
		pending++
	}
	return pending
}

// giveUp makes every result final.
func (p *processor) giveUp() {
	for aid, r := range p.taskRes {
		if !r.final {
			r.final = true
			p.taskRes[aid] = r
		}
	}
	for pid, r := range p.projRes {
		if !r.final {
			r.final = true
			p.projRes[pid] = r
		}
	}
}

// assemble runs the plugins over the batch's events, in order, and builds
// the records to produce: each event's plugin records, or its error record,
// or nothing (a counted skip).
func (p *processor) assemble(ctx context.Context) *batch {
	b := &p.b
	b.out.Reset()
	clear(b.send)
	b.send = b.send[:0]
	b.meta = b.meta[:0]
	clear(b.failed)
	b.skipped = [2]int{}
	b.firstErr = nil

	en := &p.enriched
	for i := range p.items {
		it := &p.items[i]
		*en = plugin.Enriched{Event: &it.ev, Raw: it.raw}
		if it.err == nil && it.task {
			tr := p.taskRes[it.ev.TaskAssignmentID.Value]
			if tr.err != nil {
				it.class, it.err = classOf(tr.err), fmt.Errorf("task assignment %d: %w", it.ev.TaskAssignmentID.Value, tr.err)
			} else {
				en.Task = tr.e.ent
			}
			if it.err == nil && it.ev.ProjectID != "" {
				pr := p.projRes[it.ev.ProjectID]
				if pr.err != nil {
					it.class, it.err = classOf(pr.err), fmt.Errorf("project %s: %w", it.ev.ProjectID, pr.err)
				} else {
					en.Project = pr.e
				}
			}
		}
		if it.err != nil {
			p.addError(b, int32(i), it)
			continue
		}
		n := b.out.Len()
		if err := p.o.Orchestrator.Handle(ctx, en, &b.out); err != nil {
			it.class, it.err = dlq.ClassPluginFailed, err
		}
		recs := b.out.Records[n:]
		if len(recs) > 0 {
			if class, err := p.checkSize(it.rec, recs); err != nil {
				// The event's records cannot be published: none of them
				// is, and its error record says why.
				b.out.Truncate(n)
				it.class, it.err = class, err
				recs = nil
			}
		}
		for _, r := range recs {
			b.send = append(b.send, r)
			b.meta = append(b.meta, sendMeta{item: int32(i)})
		}
		switch {
		case it.err != nil:
			p.addError(b, int32(i), it)
		case len(recs) > 0:
		case it.task:
			b.skipped[1]++
		default:
			b.skipped[0]++
		}
	}
	return b
}

// release drops the references to the last batch's records and rows, so
// that an idle worker holds none.
// close stops the caches' background work.
func (p *processor) close() {
	p.tasks.Close()
	p.projects.Close()
}

func (p *processor) release() {
	clear(p.items)
	p.items = p.items[:0]
	p.b.out.Reset()
	clear(p.b.send)
	p.b.send = p.b.send[:0]
}

// committed records a committed batch in the metrics and logs its failures
// once.
func (p *processor) committed(b *batch) {
	p.o.Orchestrator.Published(&b.out)
	for reason, n := range b.failed {
		p.failedC[reason].Add(float64(n))
	}
	for i, n := range b.skipped {
		if n > 0 {
			p.skippedC[i].Add(float64(n))
		}
	}
	if len(p.refused) > 0 {
		for i := range p.items {
			delete(p.refused, keyOf(p.items[i].rec))
		}
	}
	if len(b.failed) > 0 {
		attrs := make([]any, 0, 2*len(b.failed))
		for reason, n := range b.failed {
			attrs = append(attrs, reason, n)
		}
		p.log.Warn("events_to_error_topic", slog.String("topic", p.o.ErrorTopic), slog.Group("by_reason", attrs...), slog.Any("first_err", b.firstErr))
	}
}
