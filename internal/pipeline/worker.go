package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/config"
	"kpipe/internal/dlq"
	"kpipe/internal/metrics"
)

// DefaultShutdownTimeout bounds the final flush and commit of a graceful
// stop.
const DefaultShutdownTimeout = 30 * time.Second

// ErrKilled is returned by Run when a test hook stopped the worker the way
// a crash would: nothing flushed, nothing committed.
var ErrKilled = errors.New("worker killed by hook")

// Hooks let tests stop a worker at chosen points as a crash would. A hook
// that returns an error makes Run abandon everything (no flush, no commit)
// and return that error.
type Hooks struct {
	// AfterBatch runs after a poll's records went through the chain and their
	// error records were published, before any flush.
	AfterBatch func(records int) error
	// AfterTableCommit runs after a flush committed a table version, before
	// success records are published and offsets committed.
	AfterTableCommit func(version int64) error
}

// Worker is a plugin action worker: it consumes its input topic in its
// consumer group, runs each partition's records through the handler chain,
// publishes error and success records and commits offsets only for what is
// durable. With a buffering handler (delta_writer) the table's txn actions
// are the source of truth for offsets: on assignment the worker seeks to the
// stored version + 1 and drops anything at or below it.
type Worker struct {
	cfg      *config.Worker
	kopts    []kgo.Opt
	chain    *Chain
	flusher  Flusher
	deps     Deps
	log      *slog.Logger
	hooks    Hooks
	shutdown time.Duration

	consumed, processed, failedC, deltaWrites, deltaErrs prometheus.Counter
	latency, batchSize                                   prometheus.Observer
	errs, rowsByStatus                                   *prometheus.CounterVec
	errRecordsC                                          prometheus.Counter
	mismatch                                             *prometheus.GaugeVec
	resets                                               *prometheus.CounterVec
	skipped                                              *prometheus.CounterVec

	// health backs Ready, the lag gauge and the degraded state.
	health *health
	// adm lists the input partitions' offsets (its own client, so that
	// the checks never wait on the consumer).
	adm            *kadm.Client
	reset          ResetPolicy
	group          GroupOptions
	healthInterval time.Duration
	// maxBytes and maxDepth are the message limits (max_message_bytes,
	// max_nesting_depth).
	maxBytes, maxDepth int
	// prePublish is set when the flusher calls publishCommit before each
	// commit: rejected rows' error records and success records are then
	// durable before the commit, not published after it.
	prePublish bool
	// errLimit is the error topic's record size limit (0: unknown).
	errLimit atomic.Int64
	// toPause are partitions assigned with an offset mismatch, paused by
	// the loop before its next poll. Guarded by mu.
	toPause []int32

	// mu is held while a poll is processed, during flushes and in rebalance
	// callbacks, so they never overlap.
	mu         sync.Mutex
	cl         *kgo.Client
	parts      map[int32]*partState
	lastCommit time.Time
	// paused is set while fetching is paused for unavailable storage; only
	// the one flush running at a time changes it.
	paused  atomic.Bool
	dead    atomic.Bool
	started atomic.Bool
	// storageDown is set while a flush is retried against unavailable
	// storage.
	storageDown atomic.Bool
	// inflight is the flush running in the background, failed a flush that
	// failed and must be committed again before any later one. Both are
	// guarded by mu.
	inflight, failed *flushJob
	// fieldHint is the most fields an event had after the chain: new events
	// are decoded into maps with room for them.
	fieldHint  atomic.Int64
	onProduced func(*kgo.Record, error)
}

// ErrNotReady is wrapped by Ready's errors.
var ErrNotReady = errors.New("worker not ready")

// ErrFatal is wrapped by the errors Run returns when the worker cannot go
// on whatever it retries: the broker refused its credentials or its
// authorization, another member took its static instance id, or the table
// cannot be written by kpipe. The process should exit non-zero.
var ErrFatal = errors.New("fatal worker error")

// Ready reports whether the worker is consuming: Run has started, the
// broker answers, the group has assigned partitions, the table's storage
// is not being retried, no partition is stopped on an offset mismatch, and
// records do not wait longer than the stall timeout with nothing made
// durable. While lookups fail and rows are written without them, it
// returns an error wrapping metrics.ErrDegraded. It backs /readyz.
func (w *Worker) Ready(context.Context) error {
	if w.dead.Load() {
		return fmt.Errorf("%w: %s stopped", ErrNotReady, w.cfg.Name)
	}
	if !w.started.Load() {
		return fmt.Errorf("%w: %s not started", ErrNotReady, w.cfg.Name)
	}
	return w.health.check(time.Now())
}

// partState is what the worker knows of one assigned input partition.
type partState struct {
	// floor: records at or below it are already in the table; dropped.
	floor int64
	// last is the last record fully handled (its row buffered or written,
	// its error records published).
	last *kgo.Record
	// cut is the last offset handed to a flush (in flight or done), flushed
	// the last offset made durable and committed the last offset committed
	// to Kafka.
	cut, flushed, committed int64
	// flushedRec is the record at flushed, what the offset commit names.
	flushedRec *kgo.Record
	// stopped is set for a partition assigned with an offset mismatch: it
	// is paused and nothing of it is handled.
	stopped bool
}

func newPartState() *partState {
	return &partState{floor: -1, cut: -1, flushed: -1, committed: -1}
}

// WorkerOption changes a Worker built by NewWorker.
type WorkerOption func(*Worker)

// WithHooks installs test hooks.
func WithHooks(h Hooks) WorkerOption { return func(w *Worker) { w.hooks = h } }

// WithShutdownTimeout bounds the final flush and commit of a graceful stop.
func WithShutdownTimeout(d time.Duration) WorkerOption { return func(w *Worker) { w.shutdown = d } }

// WithResetOffsets sets what the worker does with a partition whose stored
// offsets do not fit its log (default ResetNone: stop that partition).
func WithResetOffsets(p ResetPolicy) WorkerOption { return func(w *Worker) { w.reset = p } }

// WithStallTimeout sets how long records may wait with nothing made
// durable before Ready reports the worker stalled (default
// DefaultStallTimeout).
func WithStallTimeout(d time.Duration) WorkerOption {
	return func(w *Worker) { w.health.stall = d }
}

// WithHealthInterval sets how often the worker checks the broker and
// refreshes its lag gauge (default DefaultHealthInterval).
func WithHealthInterval(d time.Duration) WorkerOption {
	return func(w *Worker) { w.healthInterval = d }
}

// GroupOptions tune the worker's consumer-group membership.
type GroupOptions struct {
	// InstanceID, when set, makes the worker a static member (KIP-345): a
	// restarted process with the same id takes its partitions back at once.
	// It must be unique among the group's running members (a pod name); a
	// second process with the same id fences the first, which then exits.
	InstanceID string
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating (a killed process) before giving its partitions to the
	// others. Default DefaultSessionTimeout.
	SessionTimeout time.Duration
	// HeartbeatInterval defaults to a third of SessionTimeout, at most 1s.
	HeartbeatInterval time.Duration
}

// DefaultSessionTimeout is GroupOptions.SessionTimeout's default: the
// smallest Kafka's default group.min.session.timeout.ms allows, so that the
// partitions of a killed worker are consuming again within about 10s.
const DefaultSessionTimeout = 6 * time.Second

// WithGroupOptions sets the consumer-group membership options.
func WithGroupOptions(g GroupOptions) WorkerOption { return func(w *Worker) { w.group = g } }

// NewWorker builds the worker cfg describes: its handler chain from reg with
// deps. kopts are the Kafka client options (seed brokers, TLS, SASL,
// logger); the worker adds its consumer-group options. Nothing connects
// until Run.
func NewWorker(ctx context.Context, cfg *config.Worker, kopts []kgo.Opt, reg *Registry, deps Deps, opts ...WorkerOption) (*Worker, error) {
	if cfg.Name == "" || cfg.InputTopic == "" || cfg.ConsumerGroup == "" {
		return nil, errors.New("worker needs a name, an input_topic and a consumer_group")
	}
	if cfg.EnableAutoCommit {
		return nil, fmt.Errorf("worker %s: enable_auto_commit must be false: offsets are committed only once rows are durable", cfg.Name)
	}
	if deps.WorkerName == "" {
		deps.WorkerName = cfg.Name
	}
	deps = deps.withDefaults()
	chain, err := BuildChain(ctx, reg, cfg.EnrichmentHandlers, deps)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", cfg.Name, err)
	}
	return newWorker(cfg, kopts, chain, deps, opts...), nil
}

func newWorker(cfg *config.Worker, kopts []kgo.Opt, chain *Chain, deps Deps, opts ...WorkerOption) *Worker {
	m, name := deps.Metrics, cfg.Name
	w := &Worker{
		cfg:          cfg,
		kopts:        kopts,
		chain:        chain,
		flusher:      chain.Flusher(),
		deps:         deps,
		log:          deps.Logger.With("worker", name),
		shutdown:     DefaultShutdownTimeout,
		parts:        make(map[int32]*partState),
		consumed:     m.WorkerMessagesConsumed.WithLabelValues(name),
		processed:    m.WorkerMessagesProcessed.WithLabelValues(name),
		failedC:      m.WorkerMessagesFailed.WithLabelValues(name),
		deltaWrites:  m.WorkerDeltaWrites.WithLabelValues(name),
		deltaErrs:    m.WorkerDeltaWriteErrors.WithLabelValues(name),
		latency:      m.WorkerProcessingLatency.WithLabelValues(name),
		batchSize:    m.BatchSize.WithLabelValues(name),
		errs:         m.Errors.MustCurryWith(prometheus.Labels{"worker": name}),
		rowsByStatus: m.RowsByStatus.MustCurryWith(prometheus.Labels{"worker": name}),
		errRecordsC:  m.ErrorRecords.WithLabelValues(name, cfg.ErrorTopic),
		mismatch:     m.PartitionOffsetMismatch.MustCurryWith(prometheus.Labels{"worker": name, "topic": cfg.InputTopic}),
		resets:       m.OffsetResets.MustCurryWith(prometheus.Labels{"worker": name, "topic": cfg.InputTopic}),
		skipped:      m.Skipped.MustCurryWith(prometheus.Labels{"worker": name}),

		healthInterval: DefaultHealthInterval,
		maxBytes:       cfg.MaxMessageBytes,
		maxDepth:       cfg.MaxNestingDepth,
	}
	if w.maxBytes <= 0 {
		w.maxBytes = config.DefaultMaxMessageBytes
	}
	if w.maxDepth <= 0 {
		w.maxDepth = config.DefaultMaxNestingDepth
	}
	w.health = newHealth(name, cfg.ConsumerGroup, cfg.InputTopic, m, w.log, DefaultStallTimeout)
	if cp, ok := w.flusher.(commitPublishing); ok {
		cp.SetCommitPublisher(w.publishCommit)
		w.prePublish = true
	}
	w.onProduced = w.onSuccessProduced
	for _, o := range opts {
		o(w)
	}
	return w
}

func (w *Worker) batchLimit() int {
	if w.cfg.BatchSize > 0 {
		return w.cfg.BatchSize
	}
	return 100
}

// Run consumes until ctx is cancelled, then stops polling, finishes the
// batch in hand, flushes, commits and closes; it returns nil after such a
// graceful stop. It returns an error when the worker cannot go on (a
// handler that cannot work, the final flush failing); nothing uncommitted is
// lost then, the next run resumes from the table.
func (w *Worker) Run(ctx context.Context) (err error) {
	session := w.group.SessionTimeout
	if session <= 0 {
		session = DefaultSessionTimeout
	}
	heartbeat := w.group.HeartbeatInterval
	if heartbeat <= 0 {
		heartbeat = min(session/3, time.Second)
	}
	opts := append([]kgo.Opt{
		kgo.ConsumeTopics(w.cfg.InputTopic),
		kgo.ConsumerGroup(w.cfg.ConsumerGroup),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come back as records so that the position,
		// hence the lag, counts them: a drained worker shows lag 0.
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(session),
		kgo.HeartbeatInterval(heartbeat),
		kgo.OnPartitionsRevoked(w.onRevoked),
		kgo.OnPartitionsLost(w.onLost),
		kgo.AdjustFetchOffsetsFn(w.adjustOffsets),
	}, w.kopts...)
	if w.group.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(w.group.InstanceID))
	}
	admCl, err := kgo.NewClient(w.kopts...)
	if err != nil {
		_ = w.chain.Close(ctx) // the client error is what matters
		return fmt.Errorf("worker %s: kafka client: %w", w.cfg.Name, err)
	}
	defer admCl.Close()
	w.adm = kadm.NewClient(admCl)
	lctx, cancelLearn := context.WithTimeout(ctx, 10*time.Second)
	w.learnErrorLimit(lctx)
	cancelLearn()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		_ = w.chain.Close(ctx) // the client error is what matters
		return fmt.Errorf("worker %s: kafka client: %w", w.cfg.Name, err)
	}
	w.mu.Lock()
	w.cl = cl
	w.lastCommit = time.Now()
	w.mu.Unlock()
	w.started.Store(true)
	defer w.started.Store(false)
	w.log.Info("worker_started", "topic", w.cfg.InputTopic, "group", w.cfg.ConsumerGroup, "handlers", len(w.chain.stages), "session_timeout", session, "instance_id", w.group.InstanceID)

	hctx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		w.health.run(hctx, w.adm, w.cfg.InputTopic, w.healthInterval)
	}()
	defer func() {
		stopHealth()
		<-healthDone
		w.health.ready.Set(0)
	}()

	runErr := w.loop(ctx, cl)
	if runErr != nil && !errors.Is(runErr, ErrKilled) {
		w.health.setFatal(runErr)
	}
	if errors.Is(runErr, ErrKilled) || w.dead.Load() {
		// A simulated crash: leave everything as it is. A flush running in
		// the background is stopped and waited for (its commit, if it got
		// that far, is in the table: the next run starts after it).
		w.dead.Store(true)
		w.mu.Lock()
		w.abandonFlush()
		w.mu.Unlock()
		cl.Close()
		_ = w.chain.Close(context.Background())
		return runErr
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.shutdown)
	defer cancel()
	var errs []error
	w.mu.Lock()
	if runErr != nil {
		errs = append(errs, runErr)
		w.abandonFlush()
	} else if err := w.flushAndCommit(sctx); err != nil {
		errs = append(errs, fmt.Errorf("final flush: %w", err))
		w.abandonFlush()
	}
	w.mu.Unlock()
	if err := cl.Flush(sctx); err != nil {
		errs = append(errs, fmt.Errorf("publishing success records: %w", err))
	}
	if runErr != nil {
		// Do not let the revoke callback flush what a failure left behind.
		w.dead.Store(true)
	}
	cl.Close()
	if err := w.chain.Close(sctx); err != nil {
		errs = append(errs, err)
	}
	w.log.Info("worker_stopped", "error", errors.Join(errs...))
	return errors.Join(errs...)
}

func (w *Worker) loop(ctx context.Context, cl *kgo.Client) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		pctx, cancel := context.WithCancel(ctx)
		if w.flusher != nil {
			if _, next := w.flusher.FlushDue(time.Now()); !next.IsZero() {
				cancel()
				pctx, cancel = context.WithDeadline(ctx, next)
			}
		}
		// A background flush ending cuts the poll short, so that its
		// success records and offsets go out at once.
		w.mu.Lock()
		j := w.inflight
		w.mu.Unlock()
		stop := func() bool { return false }
		if j != nil {
			stop = context.AfterFunc(j.doneCtx, cancel)
		}
		w.mu.Lock()
		if len(w.toPause) > 0 {
			cl.PauseFetchPartitions(map[string][]int32{w.cfg.InputTopic: w.toPause})
			w.toPause = nil
		}
		w.mu.Unlock()
		fetches := cl.PollRecords(pctx, w.batchLimit())
		stop()
		cancel()
		if fetches.IsClientClosed() {
			return nil
		}
		if ctx.Err() != nil {
			// Stop polling; what this poll returned is left uncommitted.
			cl.AllowRebalance()
			return nil
		}
		w.mu.Lock()
		err := w.processPoll(ctx, fetches)
		if err == nil {
			err = w.maybeFlush(ctx)
		}
		w.mu.Unlock()
		cl.AllowRebalance()
		if err != nil {
			if ctx.Err() != nil && !errors.Is(err, ErrKilled) {
				return nil
			}
			return err
		}
	}
}

// partBatch is one partition's share of a poll.
type partBatch struct {
	part int32
	st   *partState
	recs []*kgo.Record
	evs  []*Event
	// malformed counts the records that did not decode, inTable those
	// dropped because the table holds them.
	malformed, inTable int
	failed             []*Event
	out                []*Event
	last               *kgo.Record
	n                  int
	err                error
}

// dataRecords returns recs without the transaction markers (kept by the
// client so that the position counts them), and the last data offset (-1
// for none). recs is reused.
func dataRecords(recs []*kgo.Record) ([]*kgo.Record, int64) {
	out := recs[:0:0]
	control := false
	for _, r := range recs {
		if r.Attrs.IsControl() {
			control = true
			break
		}
	}
	if !control {
		out = recs
	} else {
		for _, r := range recs {
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		return nil, -1
	}
	return out, out[len(out)-1].Offset
}

// isFatalKafka reports whether a consuming error cannot go away by
// retrying: the credentials or the authorization are refused, or another
// member took this worker's static instance id.
func isFatalKafka(err error) bool {
	for _, e := range []error{
		kerr.FencedInstanceID, kerr.SaslAuthenticationFailed, kerr.IllegalSaslState,
		kerr.UnsupportedSaslMechanism, kerr.GroupAuthorizationFailed, kerr.TopicAuthorizationFailed,
		kerr.ClusterAuthorizationFailed, kerr.InvalidSessionTimeout,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (w *Worker) part(p int32) *partState {
	st, ok := w.parts[p]
	if !ok {
		st = newPartState()
		w.parts[p] = st
	}
	return st
}

// maxFieldHint bounds the size hint of decoded events, so that one odd
// message with many fields does not make every map large.
const maxFieldHint = 64

// processPoll runs a poll's records through the chain, a goroutine per
// partition (decoding included), and publishes their error records. A
// partition's state moves on only when all of that is done.
func (w *Worker) processPoll(ctx context.Context, fetches kgo.Fetches) error {
	now := time.Now()
	var batches []*partBatch
	var fatal error
	fetches.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		if isFatalKafka(err) {
			if fatal == nil {
				fatal = fmt.Errorf("%w: worker %s: kafka: %w", ErrFatal, w.cfg.Name, err)
			}
			return
		}
		w.log.Warn("fetch_failed", "topic", topic, "partition", p, "error", err)
	})
	if fatal != nil {
		return fatal
	}
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		st := w.part(p.Partition)
		if st.stopped {
			return // offsets mismatch: paused, what was fetched is not handled
		}
		recs, lastData := dataRecords(p.Records)
		last := p.Records[len(p.Records)-1]
		w.health.consumed(p.Partition, last.Offset, lastData, p.HighWatermark)
		if len(recs) == 0 {
			return // only transaction markers
		}
		batches = append(batches, &partBatch{part: p.Partition, st: st, recs: recs, last: recs[len(recs)-1], n: len(recs)})
	})
	if len(batches) == 0 {
		return nil
	}
	n := 0
	for _, b := range batches {
		n += b.n
	}
	w.consumed.Add(float64(n))
	w.batchSize.Observe(float64(n))

	hint := int(w.fieldHint.Load())
	run := func(b *partBatch) {
		w.decode(b, hint, now)
		b.out, b.failed, b.err = w.chain.Process(ctx, b.evs, b.failed)
		most := 0
		for _, ev := range b.out {
			most = max(most, len(ev.Fields))
		}
		most = min(most, maxFieldHint)
		if int64(most) > w.fieldHint.Load() {
			w.fieldHint.Store(int64(most)) // a racy max is good enough for a size hint
		}
	}
	if len(batches) == 1 {
		run(batches[0])
	} else {
		var wg sync.WaitGroup
		for _, b := range batches {
			wg.Go(func() { run(b) })
		}
		wg.Wait()
	}
	var firstErr error
	for _, b := range batches {
		if b.inTable > 0 {
			w.skipped.WithLabelValues(SkipInTable).Add(float64(b.inTable))
		}
		if b.malformed > 0 {
			for _, ev := range b.failed {
				if he := ev.Errors[0]; he.Handler == "decode" {
					w.errs.WithLabelValues(he.Class).Inc()
				}
			}
		}
		if b.err != nil && firstErr == nil {
			firstErr = b.err
		}
	}
	if firstErr == nil {
		firstErr = w.publishErrors(ctx, batches)
	}
	if firstErr != nil {
		// The consumer has moved past records whose rows are buffered but
		// not marked: drop them and stop; the next run resumes from the
		// table.
		for _, b := range batches {
			w.discardUnmarked(b.part, b.st)
		}
		return firstErr
	}
	for _, b := range batches {
		b.st.last = b.last
		w.failedC.Add(float64(len(b.failed)))
	}
	if w.flusher == nil {
		w.succeeded(ctx, batches, "", -1)
	}
	if w.hooks.AfterBatch != nil {
		if err := w.hooks.AfterBatch(n); err != nil {
			return err
		}
	}
	return nil
}

// decode turns b's records into events (one allocation for all of them),
// dropping those the table already holds; the ones that are not JSON
// objects go to b.failed.
func (w *Worker) decode(b *partBatch, hint int, now time.Time) {
	slab := make([]Event, len(b.recs))
	b.evs = make([]*Event, 0, len(b.recs))
	for i, r := range b.recs {
		if r.Offset <= b.st.floor {
			b.inTable++
			continue // already in the table
		}
		ev := &slab[i]
		*ev = Event{Raw: r.Value, Key: r.Key, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Received: now, Attempt: dlq.AttemptOf(r)}
		if n := len(r.Value); n > w.maxBytes {
			ev.Errors = append(ev.Errors, &HandlerError{Handler: "decode", Class: ClassTooLarge, Err: fmt.Errorf("message is %d bytes, over max_message_bytes %d", n, w.maxBytes)})
			b.failed = append(b.failed, ev)
			b.malformed++
			continue
		}
		fields, err := claimx.DecodeObjectOpts(r.Value, hint, claimx.DecodeOptions{MaxDepth: w.maxDepth})
		if err != nil {
			class := ClassMalformed
			if errors.Is(err, claimx.ErrTooDeep) {
				class = ClassTooDeep
				err = fmt.Errorf("%w (max_nesting_depth %d)", err, w.maxDepth)
			}
			ev.Errors = append(ev.Errors, &HandlerError{Handler: "decode", Class: class, Err: err})
			b.failed = append(b.failed, ev)
			b.malformed++
			continue
		}
		ev.Fields = fields
		b.evs = append(b.evs, ev)
	}
}

func (w *Worker) discardUnmarked(p int32, st *partState) {
	if w.flusher == nil {
		return
	}
	after := st.floor
	if st.last != nil {
		after = max(after, st.last.Offset)
	}
	w.flusher.Discard(w.cfg.InputTopic, p, after)
}

// publishErrors publishes an error record for every failed event and every
// error recorded on an event that went on, and waits until Kafka has them:
// no offset covering them is committed before.
func (w *Worker) publishErrors(ctx context.Context, batches []*partBatch) error {
	var recs []*kgo.Record
	now := time.Now()
	lookups, lookupErr := 0, error(nil)
	for _, b := range batches {
		for _, ev := range b.failed {
			he := ev.Errors[len(ev.Errors)-1]
			for _, rec := range ev.Errors[:len(ev.Errors)-1] {
				recs = append(recs, w.errorRecord(ev, rec, false, now))
			}
			recs = append(recs, w.errorRecord(ev, he, false, now))
		}
		for _, ev := range b.out {
			for _, he := range ev.Errors {
				recs = append(recs, w.errorRecord(ev, he, true, now))
				w.errs.WithLabelValues(he.Class).Inc()
				if he.Class == ClassLookup {
					lookups++
					lookupErr = he.Err
				}
			}
		}
	}
	if lookups > 0 {
		w.health.lookupFailed(lookups, lookupErr, now)
	}
	if len(recs) == 0 || w.cfg.ErrorTopic == "" {
		return nil
	}
	if err := w.produceSync(ctx, recs); err != nil {
		return fmt.Errorf("publishing %d error records: %w", len(recs), err)
	}
	w.errRecordsC.Add(float64(len(recs)))
	return nil
}

// produceSync produces recs and waits for them, retrying with backoff until
// ctx is done.
func (w *Worker) produceSync(ctx context.Context, recs []*kgo.Record) error {
	bo := newBackoff()
	for {
		err := w.cl.ProduceSync(ctx, recs...).FirstErr()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if isFatalKafka(err) || errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) || errors.Is(err, kerr.InvalidRecord) {
			// Retrying sends the same refused records again, forever.
			return fmt.Errorf("%w: worker %s: kafka refused the records: %w", ErrFatal, w.cfg.Name, err)
		}
		w.errs.WithLabelValues("publish").Inc()
		d := bo.NextBackOff()
		w.log.Warn("publish_failed", "records", len(recs), "retry_in", d, "error", err)
		if !sleep(ctx, d) {
			return err
		}
	}
}

func newBackoff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 50 * time.Millisecond
	bo.MaxInterval = 5 * time.Second
	return bo
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// flushJob is one flush: the marks it commits and, with an AsyncFlusher,
// the batch it took, committed in the background while the next polls are
// handled. At most one runs at a time, so at most one batch is being
// written while the next one fills.
type flushJob struct {
	marks  []Mark
	states []*partState  // the partition state of each mark when it was cut
	recs   []*kgo.Record // the record at each mark, for the offset commit
	commit func(context.Context) (*FlushResult, error)

	// ctx is the background run's context (nil for a run to its end).
	ctx context.Context
	// doneCtx is cancelled when res and err are set.
	doneCtx  context.Context
	markDone context.CancelFunc
	cancel   context.CancelFunc // stops the background run
	res      *FlushResult
	err      error
}

func (j *flushJob) done() bool { return j.doneCtx.Err() != nil }

// maybeFlush collects a background flush that has ended, starts a flush
// when the buffer is due, or commits offsets when nothing is buffered and
// some handled offsets are not committed yet. Callers hold w.mu.
func (w *Worker) maybeFlush(ctx context.Context) error {
	if j := w.inflight; j != nil && j.done() {
		if err := w.finishFlush(ctx); err != nil {
			return err
		}
	}
	now := time.Now()
	if w.flusher != nil {
		due, next := w.flusher.FlushDue(now)
		if due {
			return w.startFlush(ctx, false)
		}
		if !next.IsZero() || w.inflight != nil {
			return nil // rows are buffered or being written: their flush commits the offsets
		}
	}
	if now.Sub(w.lastCommit) >= time.Second {
		return w.flushAndCommit(ctx)
	}
	return nil
}

// startFlush waits for the flush in flight, if any, and starts one of what
// is buffered with the current marks: in the background when the flusher
// is an AsyncFlusher and wait is false, else to its end. Callers hold w.mu.
func (w *Worker) startFlush(ctx context.Context, wait bool) error {
	if err := w.finishFlush(ctx); err != nil {
		return err
	}
	if err := w.retryFailed(ctx); err != nil {
		return err
	}
	j := &flushJob{}
	for p, st := range w.parts {
		if st.last != nil && st.last.Offset > st.cut {
			j.marks = append(j.marks, Mark{Topic: w.cfg.InputTopic, Partition: p, Offset: st.last.Offset})
			j.states = append(j.states, st)
			j.recs = append(j.recs, st.last)
		}
	}
	if w.flusher == nil {
		return w.completeFlush(ctx, j, &FlushResult{Version: -1})
	}
	if _, next := w.flusher.FlushDue(time.Now()); len(j.marks) == 0 && next.IsZero() {
		return w.commitOffsets(ctx)
	}
	for i, st := range j.states {
		st.cut = j.marks[i].Offset
	}
	marks := j.marks
	af, async := w.flusher.(AsyncFlusher)
	if async {
		b := af.Take()
		j.commit = func(ctx context.Context) (*FlushResult, error) { return af.Commit(ctx, b, marks) }
	} else {
		j.commit = func(ctx context.Context) (*FlushResult, error) { return w.flusher.Flush(ctx, marks) }
	}
	j.doneCtx, j.markDone = context.WithCancel(context.Background())
	if !async || wait {
		j.res, j.err = w.flushRetry(ctx, j.commit)
		j.markDone()
		j.cancel = func() {}
		w.inflight = j
		return w.finishFlush(ctx)
	}
	j.ctx, j.cancel = context.WithCancel(ctx)
	w.inflight = j
	go func() {
		defer j.markDone()
		j.res, j.err = w.flushRetry(j.ctx, j.commit)
	}()
	return nil
}

// finishFlush waits for the flush in flight, if any, then publishes its
// success records and commits the offsets it made durable. A flush that
// failed is kept, to be committed again before any later one. Callers hold
// w.mu (the flush itself never takes it).
func (w *Worker) finishFlush(ctx context.Context) error {
	j := w.inflight
	if j == nil {
		return nil
	}
	select {
	case <-j.doneCtx.Done():
	case <-ctx.Done():
		// Out of time (a revoke's deadline): stop it, to be committed
		// again later.
		j.cancel()
		<-j.doneCtx.Done()
	}
	w.inflight = nil
	j.cancel()
	if j.err != nil {
		w.failed = j
		if j.ctx != nil && j.ctx.Err() != nil && ctx.Err() == nil && !errors.Is(j.err, ErrKilled) {
			// The loop's context ended under the background flush (a
			// graceful stop): commit it again with ctx.
			return w.retryFailed(ctx)
		}
		return j.err
	}
	return w.completeFlush(ctx, j, j.res)
}

// retryFailed commits a failed flush again, to its end.
func (w *Worker) retryFailed(ctx context.Context) error {
	j := w.failed
	if j == nil {
		return nil
	}
	res, err := w.flushRetry(ctx, j.commit)
	if err != nil {
		return err
	}
	w.failed = nil
	return w.completeFlush(ctx, j, res)
}

// completeFlush publishes the success records of what j made durable and
// commits the offsets it covers.
func (w *Worker) completeFlush(ctx context.Context, j *flushJob, res *FlushResult) error {
	if res.Version >= 0 && w.hooks.AfterTableCommit != nil {
		if err := w.hooks.AfterTableCommit(res.Version); err != nil {
			return err
		}
	}
	if len(res.Rejected) > 0 {
		if w.prePublish {
			if w.cfg.ErrorTopic != "" {
				w.errRecordsC.Add(float64(len(res.Rejected)))
			}
		} else {
			rejected := &partBatch{failed: res.Rejected}
			if err := w.publishErrors(ctx, []*partBatch{rejected}); err != nil {
				w.log.Error("publishing_rejected_rows_failed", "rows", len(res.Rejected), "error", err)
			}
		}
		w.failedC.Add(float64(len(res.Rejected)))
		for _, ev := range res.Rejected {
			w.errs.WithLabelValues(ev.Errors[len(ev.Errors)-1].Class).Inc()
		}
	}
	if res.Skipped > 0 {
		w.skipped.WithLabelValues(SkipInTable).Add(float64(res.Skipped))
	}
	if w.prePublish {
		w.countSucceeded(res.Written, res.Table, time.Now())
	} else {
		w.succeededEvents(ctx, res.Written, res.Table, res.Version)
	}
	for i, m := range j.marks {
		st := j.states[i]
		if w.parts[m.Partition] != st || m.Offset <= st.flushed {
			continue // lost or revoked meanwhile
		}
		st.flushed, st.flushedRec = m.Offset, j.recs[i]
		w.health.madeDurable(m.Partition, m.Offset)
		st.cut = max(st.cut, m.Offset)
	}
	return w.commitOffsets(ctx)
}

// abandonFlush stops the flush in flight and waits for it, keeping nothing
// of it (a crash, or a stop after a failure). Callers hold w.mu.
func (w *Worker) abandonFlush() {
	if j := w.inflight; j != nil {
		j.cancel()
		<-j.doneCtx.Done()
		w.inflight = nil
	}
}

// flushAndCommit makes everything handled durable: it waits for the flush
// in flight, then flushes what is buffered with the current marks, to its
// end, publishes success records and commits offsets. Callers hold w.mu.
func (w *Worker) flushAndCommit(ctx context.Context) error {
	return w.startFlush(ctx, true)
}

// flushRetry runs commit, retrying unavailable storage with backoff while
// fetching is paused.
func (w *Worker) flushRetry(ctx context.Context, commit func(context.Context) (*FlushResult, error)) (*FlushResult, error) {
	bo := newBackoff()
	table := ""
	for attempt := 1; ; attempt++ {
		res, err := commit(ctx)
		if err == nil {
			if w.paused.Load() {
				w.cl.ResumeFetchTopics(w.cfg.InputTopic)
				w.paused.Store(false)
				w.storageDown.Store(false)
				w.health.setStorage(nil)
				w.log.Info("storage_available", "attempts", attempt)
			}
			if res.Table != "" {
				w.deps.Metrics.DeltaStorageUp.WithLabelValues(res.Table).Set(1)
			}
			return res, nil
		}
		var se *StorageError
		if errors.Is(err, ErrKilled) || !errors.As(err, &se) {
			w.deltaErrs.Inc()
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, err
		}
		w.deltaErrs.Inc()
		w.errs.WithLabelValues("storage").Inc()
		if tn, ok := w.flusher.(interface{ Table() string }); ok {
			table = tn.Table()
			w.deps.Metrics.DeltaStorageUp.WithLabelValues(table).Set(0)
		}
		if !w.paused.Load() {
			w.cl.PauseFetchTopics(w.cfg.InputTopic)
			w.paused.Store(true)
			w.storageDown.Store(true)
			w.health.setStorage(err)
		}
		d := bo.NextBackOff()
		w.log.Warn("storage_unavailable", "table", table, "attempt", attempt, "retry_in", d, "error", err)
		if !sleep(ctx, d) {
			return nil, err
		}
	}
}

func (w *Worker) succeeded(ctx context.Context, batches []*partBatch, table string, version int64) {
	for _, b := range batches {
		w.succeededEvents(ctx, b.out, table, version)
	}
}

// succeededEvents counts committed events and publishes their success
// records (asynchronously: they are reports, not part of the commit). The
// records and their values are allocated in one piece per call.
func (w *Worker) succeededEvents(ctx context.Context, evs []*Event, table string, version int64) {
	if len(evs) == 0 {
		return
	}
	now := time.Now()
	w.countSucceeded(evs, table, now)
	if w.cfg.SuccessTopic == "" {
		return
	}
	pctx := context.WithoutCancel(ctx)
	recs := w.successRecords(evs, table, version, now)
	for i := range recs {
		w.cl.Produce(pctx, &recs[i], w.onProduced)
	}
}

// countSucceeded counts events whose outcome is committed.
func (w *Worker) countSucceeded(evs []*Event, table string, now time.Time) {
	if len(evs) == 0 {
		return
	}
	w.processed.Add(float64(len(evs)))
	if table != "" {
		w.deltaWrites.Add(float64(len(evs)))
	}
	byStatus := map[string]int{}
	for _, ev := range evs {
		w.latency.Observe(now.Sub(ev.Received).Seconds())
		if s, ok := ev.Fields["task_status"].(string); ok {
			byStatus[s]++
		}
	}
	for s, n := range byStatus {
		w.rowsByStatus.WithLabelValues(metrics.StatusLabel(s)).Add(float64(n))
	}
}

// successRecords builds the success records of evs, keyed by their source
// offset; records and their bytes are allocated in one piece.
func (w *Worker) successRecords(evs []*Event, table string, version int64, now time.Time) []kgo.Record {
	enc := w.newSuccessEncoder(table, version, now)
	recs := make([]kgo.Record, len(evs))
	buf := make([]byte, 0, len(evs)*(enc.fixedLen+200))
	for i, ev := range evs {
		start := len(buf)
		buf = enc.append(buf, ev)
		keyStart := len(buf)
		buf = appendSourceKey(buf, ev)
		recs[i] = kgo.Record{Topic: w.cfg.SuccessTopic, Key: buf[keyStart:len(buf):len(buf)], Value: buf[start:keyStart:keyStart]}
	}
	return recs
}

// publishCommit is the CommitPublisher of the worker's flusher: before a
// table commit moves the txn offsets past them, the error records of the
// rows it rejects and the success records of the rows it holds are in
// Kafka. A crash after it and before the commit publishes them again after
// the restart (at least once, keyed by source offset).
func (w *Worker) publishCommit(ctx context.Context, pc *PendingCommit) error {
	now := time.Now()
	var recs []*kgo.Record
	if w.cfg.ErrorTopic != "" {
		for _, r := range pc.Rejected {
			recs = append(recs, w.errorRecord(r.Event, r.Err, false, now))
		}
	}
	if w.cfg.SuccessTopic != "" && len(pc.Written) > 0 {
		succ := w.successRecords(pc.Written, pc.Table, pc.Version, now)
		for i := range succ {
			recs = append(recs, &succ[i])
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if err := w.produceSync(ctx, recs); err != nil {
		return fmt.Errorf("publishing %d error and success records before the commit: %w", len(recs), err)
	}
	return nil
}

func (w *Worker) onSuccessProduced(r *kgo.Record, err error) {
	if err != nil && !w.dead.Load() {
		w.errs.WithLabelValues("publish").Inc()
		w.log.Warn("success_record_failed", "topic", r.Topic, "error", err)
	}
}

// commitOffsets commits, for each partition, the offset after the last
// durable record. It is an optimisation: the table's txn versions are the
// truth, so a failure is logged and left for the next commit.
func (w *Worker) commitOffsets(ctx context.Context) error {
	var recs []*kgo.Record
	for _, st := range w.parts {
		if r := st.flushedRec; r != nil && r.Offset > st.committed {
			recs = append(recs, r)
		}
	}
	w.lastCommit = time.Now()
	if len(recs) == 0 {
		return nil
	}
	if err := w.cl.CommitRecords(ctx, recs...); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		w.log.Warn("offset_commit_failed", "error", err)
		return nil
	}
	for _, r := range recs {
		if st := w.parts[r.Partition]; st != nil {
			st.committed = max(st.committed, r.Offset)
			w.health.madeDurable(r.Partition, r.Offset)
		}
	}
	return nil
}

// onRevoked flushes and commits before partitions move to another member.
// If the flush cannot finish in time, the revoked partitions' buffered rows
// are dropped: the new owner reads them again from Kafka.
func (w *Worker) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if w.dead.Load() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	parts := revoked[w.cfg.InputTopic]
	if len(parts) == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, w.shutdown)
	defer cancel()
	if err := w.flushAndCommit(fctx); err != nil {
		w.log.Warn("flush_on_revoke_failed", "error", err)
	}
	w.forget(parts)
}

// onLost drops what the worker held of partitions it lost without a chance
// to commit.
func (w *Worker) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if w.dead.Load() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forget(lost[w.cfg.InputTopic])
}

func (w *Worker) forget(parts []int32) {
	for _, p := range parts {
		if w.flusher != nil {
			after := int64(-1)
			if st, ok := w.parts[p]; ok {
				after = st.flushed
			}
			w.flusher.Discard(w.cfg.InputTopic, p, after)
		}
		if st, ok := w.parts[p]; ok && st.stopped {
			w.cl.ResumeFetchPartitions(map[string][]int32{w.cfg.InputTopic: {p}})
			w.mismatch.DeleteLabelValues(strconv.Itoa(int(p)))
		}
		delete(w.parts, p)
		w.health.revoked(p)
	}
}
