// Package enrich is the enrichment worker: it consumes ClaimX events from
// claimx.events, fetches the task-assignment and project rows of task events
// from the ClaimX API, runs the plugin orchestrator, and produces what the
// plugins publish, exactly once.
//
// Each poll is enriched first and then published in one Kafka transaction
// (franz-go's GroupTransactSession): the plugins' records, the error records
// and the consumed offsets commit together or not at all, so after a crash
// or a rebalance the uncommitted events are processed again and their
// earlier output, never committed, is invisible to read_committed consumers.
// No transaction is open while ClaimX is called: it spans only the produce
// and the commit, so an API outage or hang of any length cannot time it out.
//
// Within a poll, the lookups run concurrently (bounded, coalesced per key,
// cached with a TTL); the plugins then run over the events in their
// partition's order, so the output keeps each assignment's order (a task's
// events share a project and therefore an input partition, and the output is
// keyed by assignment_id).
//
// When a poll's lookups fail as unavailable (5xx, 429 past the connection's
// retries, timeouts, refused connections), the worker holds the poll and
// stops consuming: it retries the failed lookups with a growing pause
// (PauseBackoffMin to PauseBackoffMax), reports not ready
// (ErrClaimXUnavailable with the last error, kpipe_enrich_paused 1) and goes
// on by itself once ClaimX answers. A key that keeps failing while ClaimX
// answers other requests is given up after RetryAttempts rounds: its events
// go to the error topic as api_unavailable. A rebalance is never held up by
// a pause: a held poll whose partitions are revoked is dropped, and their
// new owner processes it.
//
// A broker that is unreachable or restarts stops nothing: a transaction
// that cannot produce or end is aborted (kgo's documented retry of End with
// TryAbort, which reloads the producer id and so aborts what the broker
// may still hold open), the session rewinds, and the worker reports not
// ready (ErrBrokerUnreachable) and tries the poll again with a growing
// pause (at most 4 s). A commit whose outcome is unknown is settled from
// the group's committed offsets. A producer state kgo cannot recover
// (OUT_OF_ORDER_SEQUENCE_NUMBER after a broker lost its producer state)
// gets a new session. Only a fence, refused credentials or a record Kafka
// keeps refusing ends Run.
//
// Every consumed event ends as exactly one of: the plugins' records, a skip
// counted by reason (kpipe_skipped_total, SkipNonTaskEvent, SkipNoTrigger),
// or an error record (dlq.Record, key "topic/partition/offset") of one of
// the dlq.Class* classes (deadletter.go).
//
//	w, err := enrich.New(enrich.Options{Kafka: kcfg, Fetcher: claimxClient, Orchestrator: orch, Metrics: m, Logger: log})
//	if err != nil {
//		return err
//	}
//	return w.Run(ctx) // nil once ctx is cancelled and the in-flight poll is committed
package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"kpipe/internal/claimx"
	"kpipe/internal/kafka"
	"kpipe/internal/metrics"
	"kpipe/internal/plugin"
)

// Defaults of Options.
const (
	DefaultName            = "claimx_enrichment_worker"
	DefaultGroup           = "claimx_enrichment_worker_group"
	DefaultCacheTTL        = 60 * time.Second
	DefaultCacheSize       = 100_000
	DefaultConcurrency     = 32
	DefaultMaxBatch        = 10_000
	DefaultDrainTimeout    = 30 * time.Second
	DefaultRetryAttempts   = 3
	DefaultPauseBackoffMin = time.Second
	DefaultPauseBackoffMax = 30 * time.Second
	DefaultSessionTimeout  = 10 * time.Second
	DefaultMaxRecordBytes  = 990_000
	DefaultSlowLookups     = 10 * time.Second
)

// Fetcher fetches ClaimX rows; *claimx.Client is one. It must be safe for
// concurrent use; it is expected to retry transient failures itself and to
// return an error only when the row cannot be had. Errors for which
// httpconn.IsRetryable is true mean "ClaimX unavailable": the worker waits and
// asks again.
//
// It returns rows as their JSON text (claimx.RawRow), the form the worker
// caches: 2.1 KB a task assignment where its maps and their JSON took 6.7.
type Fetcher interface {
	TaskAssignmentRaw(ctx context.Context, assignmentID int64) (*claimx.RawRow, error)
	ProjectRaw(ctx context.Context, projectID string) (*claimx.RawRow, error)
}

// Pinger is implemented by a Fetcher that can tell whether ClaimX answers
// at all (*claimx.Client does): the worker asks it, when it has fetched no
// row yet, to tell an outage from keys that keep failing. Ping returns nil
// when the API answered, and an error for which httpconn.IsRetryable is true
// when it did not.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Options configure a Worker.
type Options struct {
	// Name labels metrics and logs. Default "claimx_enrichment_worker".
	Name string
	// Kafka is the cluster to use. Required.
	Kafka kafka.Config
	// KafkaOpts are further kgo options (tests shorten timeouts with them).
	KafkaOpts []kgo.Opt
	// Group is the consumer group. Default "claimx_enrichment_worker_group".
	Group string
	// Topic is the input topic. Default "claimx.events".
	Topic string
	// ErrorTopic receives the events that cannot be parsed or enriched.
	// Default "claimx.enrichment.errors".
	ErrorTopic string
	// TransactionalID identifies this worker's transactions. It must be
	// stable across restarts of one worker (a restart then aborts what the
	// dead process left open at once) and unique among the group's running
	// members. Default "<group>-<hostname>".
	TransactionalID string
	// InstanceID is the worker's static group membership id (KIP-345): a
	// restarted worker takes its predecessor's place and partitions at
	// once instead of waiting for its session to expire. Default: the
	// TransactionalID; "-" means dynamic membership. On a clean stop the
	// worker leaves the group, so its partitions move at once.
	InstanceID string
	// SessionTimeout is how long the group waits for a silent member
	// (killed, hung) before moving its partitions. Default 10s.
	SessionTimeout time.Duration
	// Fetcher fetches rows from ClaimX. Required.
	Fetcher Fetcher
	// Orchestrator runs the plugins. Required.
	Orchestrator *plugin.Orchestrator
	// Metrics records the worker's metrics. Required.
	Metrics *metrics.Metrics
	// Logger receives the worker's logs (kgo's too). Nil discards them.
	Logger *slog.Logger
	// CacheTTL is how long a fetched row is reused. Default 60s. A cached
	// task row older than the event being enriched (its updated_at before
	// the event's ingested_at) is fetched again whatever its age.
	CacheTTL time.Duration
	// CacheSize bounds the rows cached per kind. Default 100000.
	CacheSize int
	// Concurrency bounds the lookups in flight. Default 32.
	Concurrency int
	// MaxBatch bounds the events of one poll, hence of one transaction.
	// Default 10000.
	MaxBatch int
	// DrainTimeout bounds the work on the last poll after Run's context is
	// cancelled. Default 30s. A poll held while ClaimX is unavailable is
	// dropped at once (it was not committed: it is consumed again).
	DrainTimeout time.Duration
	// RetryAttempts is the retry budget of an event whose lookup fails as
	// unavailable: the rounds of lookups (each with the connection's own
	// retries) in which ClaimX answered other requests but not this one,
	// after which the event goes to the error topic as api_unavailable.
	// Rounds in which ClaimX answers nothing do not count: the worker
	// waits for it however long it is down. Default 3.
	RetryAttempts int
	// PauseBackoffMin and PauseBackoffMax bound the pause between rounds of
	// lookups while ClaimX is unavailable; it doubles from the first to the
	// second. Defaults 1s and 30s.
	PauseBackoffMin time.Duration
	PauseBackoffMax time.Duration
	// SlowLookups is how long a poll's first round of lookups may go
	// unanswered before the worker reports not ready (ClaimX hanging): the
	// round itself goes on, within the connection's own timeouts and
	// retries. Default 10s.
	SlowLookups time.Duration
	// MaxRecordBytes bounds a produced record (key, value and headers): a
	// plugin record over it sends its event to the error topic as
	// too_large, and error records are cut to fit it (dlq.Record.Marshal).
	// It must not exceed the topics' max.message.bytes. Default 990000.
	MaxRecordBytes int
}

func (o *Options) defaults() error {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Topic == "" {
		o.Topic = kafka.TopicEvents
	}
	if o.ErrorTopic == "" {
		o.ErrorTopic = kafka.TopicEnrichmentErrors
	}
	if o.TransactionalID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "local"
		}
		o.TransactionalID = o.Group + "-" + host
	}
	switch o.InstanceID {
	case "":
		o.InstanceID = o.TransactionalID
	case "-":
		o.InstanceID = ""
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.RetryAttempts <= 0 {
		o.RetryAttempts = DefaultRetryAttempts
	}
	if o.PauseBackoffMin <= 0 {
		o.PauseBackoffMin = DefaultPauseBackoffMin
	}
	if o.PauseBackoffMax <= 0 {
		o.PauseBackoffMax = DefaultPauseBackoffMax
	}
	o.PauseBackoffMax = max(o.PauseBackoffMax, o.PauseBackoffMin)
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.SlowLookups <= 0 {
		o.SlowLookups = DefaultSlowLookups
	}
	var errs []error
	if o.Fetcher == nil {
		errs = append(errs, errors.New("enrich: Fetcher is required"))
	}
	if o.Orchestrator == nil {
		errs = append(errs, errors.New("enrich: Orchestrator is required"))
	}
	if o.Metrics == nil {
		errs = append(errs, errors.New("enrich: Metrics is required"))
	}
	if o.MaxRecordBytes < 8<<10 {
		errs = append(errs, fmt.Errorf("enrich: MaxRecordBytes %d is below 8 KiB", o.MaxRecordBytes))
	}
	return errors.Join(errs...)
}

// Worker is the enrichment worker. Build it with New and run it with Run.
type Worker struct {
	o      Options
	log    *slog.Logger
	proc   *processor
	sess   *kgo.GroupTransactSession
	stats  workerStats
	health health
	// recent keeps the last transactions and newest records for the live
	// page (Status, status.go).
	recent *metrics.Recent

	// kopts build a session; client is the current session's client, for
	// the broker health check (the session is replaced when kgo cannot
	// recover its producer state); txnWait is the pause before the next
	// attempt after a Kafka failure, 0 after a success.
	kopts   []kgo.Opt
	client  atomic.Pointer[kgo.Client]
	txnWait time.Duration
	// stop is Run's ctx.Done(): a backoff ends on it, not only at the
	// end of the drain.
	stop <-chan struct{}

	// revokes counts partition revocations and losses; holdCancel cuts the
	// lookups of a held poll short when one happens.
	revokes    atomic.Int64
	holdMu     sync.Mutex
	holdCancel context.CancelFunc

	// closeOnce closes the last session once, from Run's end or Close;
	// closed is set from then on.
	closeOnce sync.Once
	closed    atomic.Bool
}

type workerStats struct {
	consumed prometheus.Counter
	lag      *prometheus.GaugeVec
}

// New builds a worker and its Kafka session; nothing is consumed until Run.
// The caller must Close the worker, whether Run ran or not; the Fetcher and
// the Orchestrator stay the caller's to close.
func New(o Options) (*Worker, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	log := o.Logger.With("worker", o.Name)
	proc, err := newProcessor(o, log)
	if err != nil {
		return nil, err
	}
	w := &Worker{o: o, log: log, proc: proc, recent: newRecent(o)}
	w.stats.consumed = o.Metrics.EnrichEventsConsumed.WithLabelValues(o.Name)
	w.stats.lag = o.Metrics.ConsumerLag
	w.health.ready = o.Metrics.Ready.WithLabelValues(o.Name)
	w.health.pausedG = o.Metrics.EnrichPaused.WithLabelValues(o.Name)
	w.health.update(func(*health) {})
	base, err := o.Kafka.Opts(log)
	if err != nil {
		return nil, err
	}
	opts := append(base,
		kgo.ConsumerGroup(o.Group),
		kgo.ConsumeTopics(o.Topic),
		kgo.TransactionalID(o.TransactionalID),
		kgo.TransactionTimeout(20*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ProducerLinger(0),
		kgo.SessionTimeout(o.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, o.SessionTimeout/4)),
		kgo.OnPartitionsAssigned(w.onAssigned),
		kgo.OnPartitionsRevoked(w.onRevoked),
		kgo.OnPartitionsLost(w.onLost),
	)
	if o.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(o.InstanceID))
	}
	opts = append(opts, o.KafkaOpts...)
	w.kopts = opts
	if err := w.newSession(); err != nil {
		return nil, err
	}
	return w, nil
}

// newSession closes the current Kafka session, if any, and starts a new
// one. A new client starts from the group's committed offsets and loads a
// producer id afresh; initialising it bumps the epoch, which aborts what
// the old one left open.
func (w *Worker) newSession() error {
	if w.sess != nil {
		w.sess.Close()
	}
	sess, err := kgo.NewGroupTransactSession(w.kopts...)
	if err != nil {
		return fmt.Errorf("creating Kafka session: %w", err)
	}
	w.sess = sess
	w.client.Store(sess.Client())
	return nil
}

func (w *Worker) onAssigned(context.Context, *kgo.Client, map[string][]int32) {
	w.health.update(func(h *health) { h.joined = true })
}

func (w *Worker) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if len(revoked) > 0 {
		w.revoked()
	}
}

func (w *Worker) onLost(context.Context, *kgo.Client, map[string][]int32) {
	w.health.update(func(h *health) { h.joined = false })
	w.revoked()
}

// revoked makes the held poll, if any, drop: it never blocks a rebalance.
func (w *Worker) revoked() {
	w.holdMu.Lock()
	defer w.holdMu.Unlock()
	w.revokes.Add(1)
	if w.holdCancel != nil {
		w.holdCancel()
	}
}

// errDropped means the held poll's partitions were revoked.
var errDropped = errors.New("partitions revoked while holding the poll")

// errStopping means Run's context ended while the poll was held.
var errStopping = errors.New("stopping while holding the poll")

// Run consumes until ctx is cancelled, then finishes and commits the poll in
// hand (within DrainTimeout), leaves the group and returns nil. It returns
// an error wrapping ErrFenced when another process took this worker's
// transactional or instance id, ErrKafkaAuth when Kafka refuses its
// credentials, ErrRecordRefused when Kafka refuses even a cut-down error
// record, and ErrTransaction when kgo reports the producer unrecoverable
// even in a new session; the caller should log it and exit non-zero. Ready
// reports the cause from then on. A broker that is unreachable or restarts
// ends nothing: the worker aborts, reports not ready (ErrBrokerUnreachable)
// and processes the poll again once the broker answers.
func (w *Worker) Run(ctx context.Context) (err error) {
	if w.closed.Load() {
		return ErrClosed
	}
	clean := false
	defer func() {
		w.health.update(func(h *health) {
			h.stopped = true
			if err != nil {
				h.fatal = err
			}
		})
		w.close(ctx, clean)
	}()
	hctx, stopHealth := context.WithCancel(ctx)
	var hwg sync.WaitGroup
	hwg.Go(func() { w.health.watchBroker(hctx, w.client.Load, brokerInterval) })
	defer hwg.Wait()
	defer stopHealth()

	// drain is Run's context for the work in hand: cancelled DrainTimeout
	// after ctx.
	drain, cancelDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDrain()
	stopDrain := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(w.o.DrainTimeout, cancelDrain)
		context.AfterFunc(drain, func() { t.Stop() })
	})
	defer stopDrain()

	// Initialise the producer ID first: with a transactional id a previous
	// incarnation used, this aborts the transaction it left open, whose
	// pending offsets would otherwise hold the group's offset fetch until
	// the transaction timed out.
	w.stop = ctx.Done()
	if err := w.initProducer(ctx); err != nil {
		if errors.Is(err, errStopping) {
			clean = true
			return nil
		}
		return err
	}
	w.health.update(func(h *health) { h.started = true })
	w.log.Info("enrich_started", "topic", w.o.Topic, "group", w.o.Group, "transactional_id", w.o.TransactionalID,
		"instance_id", w.o.InstanceID, "plugins", w.o.Orchestrator.Names())
	for {
		rev := w.revokes.Load()
		fetches := w.sess.PollRecords(ctx, w.o.MaxBatch)
		if fetches.IsClientClosed() {
			return nil
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			switch {
			case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			case classify(err) == kafkaFatal:
				if ferr == nil {
					what := fmt.Sprintf("consuming %s/%d", t, p)
					if t == "" {
						what = fmt.Sprintf("group %q as instance %q", w.o.Group, w.o.InstanceID)
					}
					ferr = fatal(ErrTransaction, what, err)
				}
			default:
				w.log.Warn("fetch_failed", "topic", t, "partition", p, "err", err)
			}
		})
		if ferr != nil {
			return ferr
		}
		if fetches.NumRecords() > 0 {
			if err := w.handle(ctx, drain, fetches, rev); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			w.log.Info("enrich_stopped")
			clean = true
			return nil
		}
	}
}

// close leaves the group on a clean stop (a static member is otherwise kept
// until its session times out) and closes the client.
func (w *Worker) close(ctx context.Context, clean bool) {
	cl := w.sess.Client()
	if clean && w.o.InstanceID != "" {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		// Stop the group management first (for a static member kgo sends
		// no LeaveGroup), then leave by instance id.
		if err := cl.LeaveGroupContext(lctx); err != nil {
			w.log.Warn("leave_group_failed", "err", err)
		}
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Group = w.o.Group
		m := kmsg.NewLeaveGroupRequestMember()
		m.InstanceID = &w.o.InstanceID
		reason := "clean stop"
		m.Reason = &reason
		req.Members = append(req.Members, m)
		resp, err := req.RequestWith(lctx, cl)
		if err == nil {
			for _, rm := range resp.Members {
				if rm.ErrorCode != 0 {
					err = fmt.Errorf("leaving as %q: error code %d", w.o.InstanceID, rm.ErrorCode)
				}
			}
		}
		if err != nil {
			w.log.Warn("leave_group_failed", "err", err)
		}
	}
	w.closeSession()
}

// ErrClosed is returned by Run on a worker already closed.
var ErrClosed = errors.New("enrich: worker closed")

// Close releases what New opened: the Kafka session (its client, its
// connections and goroutines). Run closes it too when it returns, after
// leaving the group on a clean stop; a worker built but never run is
// released by Close alone. Close is idempotent; call it after Run has
// returned, never while it runs. It returns nil: kgo's Close reports
// nothing.
func (w *Worker) Close(context.Context) error {
	w.closeSession()
	return nil
}

// closeSession closes the current Kafka session, once.
func (w *Worker) closeSession() {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		w.sess.Close()
		w.proc.close()
	})
}
