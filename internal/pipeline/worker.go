package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/config"
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
	// recent keeps the last commits and newest rows for the live page
	// (Status, worker_status.go).
	recent *metrics.Recent

	consumed, processed, failedC, deltaWrites, deltaErrs prometheus.Counter
	latency, batchSize                                   prometheus.Observer
	errs, rowsByStatus                                   *prometheus.CounterVec
	errRecordsC                                          prometheus.Counter
	mismatch                                             *prometheus.GaugeVec
	resets                                               *prometheus.CounterVec
	skipped                                              *prometheus.CounterVec
	// statusLabel bounds rowsByStatus's status values.
	statusLabel *metrics.CappedLabel
	// status reads cfg.StatusField of an event, whose fields the flusher
	// may have trimmed (RetainFields).
	status keptPath

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
	// raw are the top-level fields decoded as *jsonx.RawObject when they
	// hold an object (rawFields); nil: none.
	raw map[string]bool
	// prePublish is set when the flusher calls publishCommit before each
	// commit: rejected rows' error records and success records are then
	// durable before the commit, not published after it.
	prePublish bool
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
	// flushes schedules the flushes. Guarded by mu.
	flushes flushes
	// inflight are the polls in flight, oldest first (worker_inflight.go).
	// Guarded by mu.
	inflight []*pollJob
	// drained counts the jobs a rebalance completed before its flush.
	drained atomic.Int64
	// fieldHint is the most fields an event had after the chain: new events
	// are decoded into maps with room for them.
	fieldHint atomic.Int64
	// pub builds and publishes the error and success records.
	pub *publisher
	// abortRun ends Run's loop with a fatal cause met in a callback.
	// Guarded by mu.
	abortRun context.CancelCauseFunc

	// closeChain closes the handler chain once, from Run's end or Close,
	// whichever comes first; chainErr is what closing it returned.
	closeChain sync.Once
	chainErr   error
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

// WithEagerDecode makes the worker decode every field of every message
// into maps, leaving none raw (see rawFields): the rows are the same, at
// a higher cost; for comparing the two.
func WithEagerDecode() WorkerOption { return func(w *Worker) { w.raw = nil } }

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
// until Run. The caller must Close the worker, whether Run ran or not.
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
		statusLabel:  metrics.NewCappedLabel(metrics.DefaultMaxLabelValues),
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
	w.recent = newRecent(cfg)
	w.raw = rawFields(chain, cfg)
	w.health = newHealth(name, cfg.ConsumerGroup, cfg.InputTopic, m, w.log, DefaultStallTimeout)
	if cp, ok := w.flusher.(commitPublishing); ok {
		cp.SetCommitPublisher(w.publishCommit)
		w.prePublish = true
	}
	retained := retainedFields(cfg)
	if fr, ok := w.flusher.(fieldRetaining); ok {
		fr.RetainFields(retained)
	}
	w.status = newKeptPath(cfg.StatusField, retained)
	w.pub = &publisher{
		name: name, errorTopic: cfg.ErrorTopic, successTopic: cfg.SuccessTopic,
		fields: newSuccessFields(cfg.SuccessRecord.Fields, retained),
		log:    w.log, errs: w.errs, dead: w.dead.Load,
	}
	w.pub.onProduced = w.pub.onSuccessProduced
	w.flushes.run = w.flushRetry
	for _, o := range opts {
		o(w)
	}
	return w
}

// abort ends Run with err, from a callback of the client.
func (w *Worker) abort(err error) {
	w.mu.Lock()
	f := w.abortRun
	w.mu.Unlock()
	if f != nil {
		f(err)
	}
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
	if n := w.cfg.FetchMaxBytes; n > 0 {
		opts = append(opts, kgo.FetchMaxBytes(int32(n)))
	}
	if n := w.cfg.FetchMaxPartitionBytes; n > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(int32(n)))
	}
	if w.group.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(w.group.InstanceID))
	}
	admCl, err := kgo.NewClient(w.kopts...)
	if err != nil {
		_ = w.Close(ctx) // the client error is what matters
		return fmt.Errorf("worker %s: kafka client: %w", w.cfg.Name, err)
	}
	defer admCl.Close()
	w.adm = kadm.NewClient(admCl)
	lctx, cancelLearn := context.WithTimeout(ctx, 10*time.Second)
	w.pub.learnErrorLimit(lctx, w.adm)
	cancelLearn()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		_ = w.Close(ctx) // the client error is what matters
		return fmt.Errorf("worker %s: kafka client: %w", w.cfg.Name, err)
	}
	w.mu.Lock()
	w.cl = cl
	w.pub.cl = cl
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

	rctx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	w.mu.Lock()
	w.abortRun = cancelRun
	w.mu.Unlock()
	runErr := w.loop(rctx, cl)
	if cause := context.Cause(rctx); runErr == nil && errors.Is(cause, ErrFatal) {
		runErr = cause // a rebalance callback met a fatal error
	}
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
		_ = w.Close(context.Background())
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
	if err := w.Close(sctx); err != nil {
		errs = append(errs, err)
	}
	w.log.Info("worker_stopped", "error", errors.Join(errs...))
	return errors.Join(errs...)
}

// Close releases what NewWorker opened: the handler chain (the table
// handle, the lookups' HTTP clients). Run closes it too, once it has
// flushed, so Close after Run only returns what that close returned; a
// worker built but never run is released by Close alone. Close is
// idempotent; call it after Run has returned, never while it runs. Buffered
// rows are not written: Run's graceful stop flushes them.
func (w *Worker) Close(ctx context.Context) error {
	w.closeChain.Do(func() { w.chainErr = w.chain.Close(ctx) })
	return w.chainErr
}
