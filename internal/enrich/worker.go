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
// or an error record (dlq.Record, key "topic/partition/offset") with one of
// the Reason* classes.
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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
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
type Fetcher interface {
	TaskAssignment(ctx context.Context, assignmentID int64) (claimx.Row, error)
	Project(ctx context.Context, projectID string) (claimx.Row, error)
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
	w := &Worker{o: o, log: log, proc: proc}
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
	})
}

// handle enriches one poll, holding it through a ClaimX outage, and
// publishes it in one transaction.
func (w *Worker) handle(ctx, drain context.Context, fetches kgo.Fetches, rev int64) error {
	recs := fetches.Records()
	defer w.proc.release()
	hold, cancel := context.WithCancel(drain)
	defer cancel()
	w.holdMu.Lock()
	w.holdCancel = cancel
	w.holdMu.Unlock()
	defer func() {
		w.holdMu.Lock()
		w.holdCancel = nil
		w.holdMu.Unlock()
	}()
	var b *batch
	err := errDropped
	if w.revokes.Load() == rev {
		b, err = w.prepare(ctx, hold, recs)
	}
	switch {
	case errors.Is(err, errStopping):
		// Nothing was committed; the poll is consumed again after the
		// restart.
		return nil
	case err != nil:
		if ctx.Err() != nil && drain.Err() != nil {
			return nil // the drain deadline passed
		}
		// Revoked: rewind what the session consumed to the committed
		// offsets (the partitions kept are consumed again from there).
		w.log.Info("poll_dropped", "events", len(recs), "cause", err)
		return w.rewind(drain)
	}
	return w.transact(drain, fetches, b)
}

// prepare enriches recs. While lookups fail as unavailable it pauses and
// tries them again, for as long as it takes, unless the partitions are
// revoked (errDropped) or ctx ends (errStopping).
func (w *Worker) prepare(ctx, hold context.Context, recs []*kgo.Record) (*batch, error) {
	p := w.proc
	p.parse(recs)
	wait := w.o.PauseBackoffMin
	defer w.resume()
	// Retry rounds end at once when ctx does: nothing of a held poll is
	// worth the drain time.
	retry, cancel := context.WithCancel(hold)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	for round := 0; ; round++ {
		var res roundResult
		var err error
		if round > 0 {
			res, err = p.lookup(retry, true)
		} else {
			res, err = w.firstLookup(hold)
		}
		if err != nil {
			return nil, w.holdErr(ctx, err)
		}
		if res.pending == 0 {
			break
		}
		if !res.answered {
			res.answered = p.probe(retry)
			if retry.Err() != nil {
				return nil, w.holdErr(ctx, retry.Err())
			}
		}
		if res.answered {
			if res.pending = p.charge(); res.pending == 0 {
				break
			}
		}
		w.pause(res, round, wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, errStopping
		case <-retry.Done():
			t.Stop()
			return nil, w.holdErr(ctx, retry.Err())
		}
		wait = min(2*wait, w.o.PauseBackoffMax)
	}
	return p.assemble(hold), nil
}

// errSlowLookups is the reason of a pause while the first round of
// lookups is still unanswered.
var errSlowLookups = errors.New("ClaimX lookups unanswered")

// firstLookup runs a poll's first round of lookups, reporting not ready
// while it takes longer than SlowLookups (a hanging API answers nothing
// until the connection's timeouts and retries are spent).
func (w *Worker) firstLookup(ctx context.Context) (roundResult, error) {
	fired := make(chan struct{})
	slow := time.AfterFunc(w.o.SlowLookups, func() {
		defer close(fired)
		w.health.update(func(h *health) { h.paused = fmt.Errorf("%w for %v", errSlowLookups, w.o.SlowLookups) })
		w.log.Warn("claimx_lookups_slow", "after", w.o.SlowLookups)
	})
	res, err := w.proc.lookup(ctx, false)
	if !slow.Stop() {
		<-fired
	}
	return res, err
}

func (w *Worker) holdErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errStopping
	}
	return fmt.Errorf("%w: %w", errDropped, err)
}

// pause reports the worker paused on ClaimX.
func (w *Worker) pause(res roundResult, round int, wait time.Duration) {
	var first bool
	w.health.update(func(h *health) {
		first = h.paused == nil
		h.paused = res.lastErr
	})
	if first {
		w.log.Warn("claimx_unavailable_paused", "keys", res.pending, "claimx_answers", res.answered, "retry_in", wait, "err", res.lastErr)
	} else {
		w.log.Debug("claimx_still_unavailable", "round", round, "keys", res.pending, "claimx_answers", res.answered, "retry_in", wait, "err", res.lastErr)
	}
}

// resume clears the pause.
func (w *Worker) resume() {
	var was bool
	w.health.update(func(h *health) {
		was = h.paused != nil
		h.paused = nil
	})
	if was {
		w.log.Info("claimx_available_resumed")
	}
}

// rewind ends an empty transaction with an abort: the session resets its
// consumed offsets to the committed ones and forgets the revocation.
func (w *Worker) rewind(ctx context.Context) error {
	if err := w.sess.Begin(); err != nil {
		return w.beginFailed(ctx, err)
	}
	if _, err := w.sess.End(ctx, kgo.TryAbort); err != nil {
		return w.endFailed(ctx, nil, nil, false, err)
	}
	return nil
}

// transact publishes one enriched poll in one transaction. A Kafka failure
// that is not fatal (classify) aborts it: the session rewinds to the
// committed offsets, the worker pauses (not ready) and the poll comes
// again.
func (w *Worker) transact(ctx context.Context, fetches kgo.Fetches, b *batch) error {
	if err := w.sess.Begin(); err != nil {
		return w.beginFailed(ctx, err)
	}
	refused, produceErr := w.produce(ctx, b)
	commit := kgo.TryCommit
	if produceErr != nil || len(refused) > 0 {
		commit = kgo.TryAbort
	}
	committed, err := w.sess.End(ctx, commit)
	switch {
	case err != nil:
		return w.endFailed(ctx, fetches, b, bool(commit), err)
	case committed:
		w.done(fetches, b)
		return nil
	}
	if produceErr != nil || len(refused) > 0 {
		w.o.Orchestrator.PublishFailed(&b.out)
	}
	if produceErr != nil {
		if classify(produceErr) == kafkaFatal {
			return fatal(ErrTransaction, "producing", produceErr)
		}
		// The broker is unreachable, restarted (OUT_OF_ORDER_SEQUENCE_NUMBER,
		// UNKNOWN_PRODUCER_ID) or the worker is stopping: these events come
		// again, none of them is refused.
		w.backOff(ctx, "producing", produceErr)
		return nil
	}
	w.kafkaOK()
	for _, r := range refused {
		// Refused records are not retried as they are: the events come
		// again (the session rewound) and get an error record instead,
		// smaller each time; the refusals are bounded.
		rec := b.send[r.i]
		w.log.Warn("record_refused", "topic", rec.Topic, "bytes", recordSize(rec), "err", r.err)
		if err := w.proc.refuse(b, r.i, r.err); err != nil {
			return err
		}
	}
	// Aborted (rebalance, refused records): the session rewound to the
	// committed offsets; these events come again.
	w.log.Warn("transaction_aborted", "events", len(w.proc.items), "refused", len(refused))
	return nil
}

// done records a committed poll.
func (w *Worker) done(fetches kgo.Fetches, b *batch) {
	w.kafkaOK()
	w.stats.consumed.Add(float64(len(w.proc.items)))
	w.proc.committed(b)
	w.updateLag(fetches)
}

// beginFailed handles an error beginning a transaction. kgo begins one
// after recovering its producer id whenever it can; what it cannot recover
// is a fence (fatalBegin), or a producer state only a new session clears
// (OUT_OF_ORDER_SEQUENCE_NUMBER after a broker lost the producer's
// sequence numbers). Nothing was produced: the new session starts from the
// committed offsets, and the poll comes again.
func (w *Worker) beginFailed(ctx context.Context, err error) error {
	if fatalBegin(err) {
		return fatal(ErrTransaction, "beginning transaction", err)
	}
	return w.renew(ctx, "beginning transaction", err)
}

// renew replaces the session after an error kgo cannot recover from.
func (w *Worker) renew(ctx context.Context, what string, cause error) error {
	w.log.Warn("kafka_session_renewed", "what", what, "err", cause)
	w.health.update(func(h *health) {
		h.joined = false
		h.kafka = fmt.Errorf("%s: %w", what, cause)
	})
	if err := w.newSession(); err != nil {
		return err
	}
	if err := w.initProducer(ctx); err != nil && !errors.Is(err, errStopping) {
		return err
	}
	return nil // stopping, if initProducer did not finish: Run sees it
}

// maxAbortTries bounds the attempts to abort a transaction kgo failed to
// end while the broker answers; past them the session is replaced.
const maxAbortTries = 5

// endFailed handles an error ending a transaction. kgo has rewound the
// session to the committed offsets and kept the transaction open; its
// documented way out is ending it again with TryAbort, which reloads the
// producer id (the epoch bump aborts whatever the broker still has open).
// That is retried with backoff while the broker is unreachable. When the
// failed end was a commit whose outcome is unknown (the connection broke
// after the request went out), the group's committed offsets tell: if the
// commit took, the session moves past the poll as if End had said so.
// fetches and b are nil for an empty transaction.
func (w *Worker) endFailed(ctx context.Context, fetches kgo.Fetches, b *batch, triedCommit bool, err error) error {
	what := "ending transaction"
	if !triedCommit {
		what = "aborting transaction"
	}
	if classify(err) == kafkaFatal {
		if b != nil {
			w.o.Orchestrator.PublishFailed(&b.out)
		}
		return fatal(ErrTransaction, what, err)
	}
	for tries := 1; ; tries++ {
		if !w.backOff(ctx, what, err) {
			// Stopping: the restarted worker's producer id initialisation
			// aborts what is left open.
			return nil
		}
		if _, err = w.sess.End(ctx, kgo.TryAbort); err == nil {
			break
		}
		if fatalBegin(err) {
			return fatal(ErrTransaction, "aborting transaction", err)
		}
		if tries >= maxAbortTries {
			return w.renew(ctx, "aborting transaction", err)
		}
		what = "aborting transaction"
	}
	if b == nil {
		return nil
	}
	if triedCommit {
		took, err := w.committedAnyway(ctx, fetches)
		if err != nil {
			return err
		}
		if took {
			w.log.Info("transaction_committed_unconfirmed", "events", len(w.proc.items))
			w.done(fetches, b)
			return nil
		}
	}
	w.o.Orchestrator.PublishFailed(&b.out)
	w.log.Warn("transaction_aborted", "events", len(w.proc.items), "cause", what)
	return nil
}

// committedAnyway reports whether the group's committed offsets are past
// the poll in fetches, and if so moves the session there. The producer id
// is reloaded first, so that no transaction of this worker is still open:
// the offsets are read as stable (KIP-447), settled commits only.
func (w *Worker) committedAnyway(ctx context.Context, fetches kgo.Fetches) (bool, error) {
	next := make(map[string]map[int32]kgo.EpochOffset)
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			last := p.Records[n-1]
			if next[p.Topic] == nil {
				next[p.Topic] = make(map[int32]kgo.EpochOffset)
			}
			next[p.Topic][p.Partition] = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
		}
	})
	for {
		cl := w.sess.Client()
		if _, _, err := cl.ProducerID(ctx); err != nil {
			if ctx.Err() != nil {
				return false, nil
			}
			if fatalBegin(err) {
				return false, fatal(ErrTransaction, "reloading the producer id", err)
			}
			// kgo keeps a failed load: only a new session loads it again,
			// and that starts from the committed offsets, whatever they
			// are.
			return false, w.renew(ctx, "reloading the producer id", err)
		}
		offs, err := kadm.NewClient(cl).FetchOffsets(ctx, w.o.Group)
		if err == nil {
			err = offs.Error()
		}
		if err == nil {
			took := true
			for t, ps := range next {
				for p, eo := range ps {
					if o, ok := offs.Lookup(t, p); !ok || o.At != eo.Offset {
						took = false
					}
				}
			}
			if took {
				w.sess.Client().SetOffsets(next)
			}
			return took, nil
		}
		if classify(err) == kafkaFatal {
			return false, fatal(ErrTransaction, "reading committed offsets", err)
		}
		if !w.backOff(ctx, "reading committed offsets", err) {
			return false, nil // stopping: the poll is consumed again after the restart
		}
	}
}

// backOff reports the worker not ready with err and pauses before the next
// attempt, doubling the pause up to txnBackoffMax. It returns false, at
// once, when ctx ends or Run is asked to stop: nothing in hand is worth
// waiting for the broker through the drain time, since what was not
// committed is consumed again after the restart.
func (w *Worker) backOff(ctx context.Context, what string, err error) bool {
	if ctx.Err() != nil || w.stopping() {
		return false
	}
	wait := max(w.txnWait, txnBackoffMin)
	w.txnWait = min(2*wait, txnBackoffMax)
	var first bool
	w.health.update(func(h *health) {
		first = h.kafka == nil
		h.kafka = fmt.Errorf("%s: %w", what, err)
	})
	if first {
		w.log.Warn("kafka_failed_retrying", "what", what, "retry_in", wait, "err", err)
	} else {
		w.log.Debug("kafka_still_failing", "what", what, "retry_in", wait, "err", err)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-w.stop:
	}
	return false
}

// stopping reports whether Run was asked to stop.
func (w *Worker) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// kafkaOK clears a Kafka failure after a success.
func (w *Worker) kafkaOK() {
	w.txnWait = 0
	var was bool
	w.health.update(func(h *health) {
		was = h.kafka != nil
		h.kafka = nil
	})
	if was {
		w.log.Info("kafka_available_resumed")
	}
}

// Bounds of the pause between attempts after a Kafka failure: short enough
// that the worker consumes again within seconds of the broker's return.
const (
	txnBackoffMin = 250 * time.Millisecond
	txnBackoffMax = 4 * time.Second
)

// initProducer loads the transactional producer id, waiting for the broker
// for as long as it takes (not ready meanwhile). With a transactional id a
// previous incarnation used, this aborts the transaction it left open. It
// returns errStopping when ctx ends or Run is asked to stop first.
func (w *Worker) initProducer(ctx context.Context) error {
	what := fmt.Sprintf("initialising transactional producer %q", w.o.TransactionalID)
	for {
		_, _, err := w.sess.Client().ProducerID(ctx)
		if err == nil {
			w.kafkaOK()
			return nil
		}
		if ctx.Err() != nil || w.stopping() {
			return errStopping
		}
		if classify(err) == kafkaFatal {
			return fatal(ErrTransaction, what, err)
		}
		if !w.backOff(ctx, what, err) {
			return errStopping
		}
		// kgo keeps a failed load: a new session loads it again.
		if err := w.newSession(); err != nil {
			return err
		}
	}
}

type refusedRecord struct {
	i   int
	err error
}

// produce sends the batch's records, in order, and waits for them. It
// returns the records Kafka refused (classify: kafkaRefused), and an error
// when the produce as a whole failed (any other produce error: the broker
// unreachable, the producer's state lost in a broker restart, fenced, the
// context ended).
func (w *Worker) produce(ctx context.Context, b *batch) ([]refusedRecord, error) {
	if len(b.send) == 0 {
		return nil, nil
	}
	done := make(chan struct{})
	var (
		mu        sync.Mutex
		remaining = len(b.send)
		failed    map[*kgo.Record]error
	)
	promise := func(r *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if failed == nil {
				failed = make(map[*kgo.Record]error)
			}
			failed[r] = err
		}
		if remaining--; remaining == 0 {
			close(done)
		}
	}
	for _, r := range b.send {
		w.sess.Produce(ctx, r, promise)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if len(failed) == 0 {
		return nil, nil
	}
	var refused []refusedRecord
	for i, r := range b.send {
		err, ok := failed[r]
		if !ok {
			continue
		}
		if classify(err) != kafkaRefused {
			// Not about this record (the broker unreachable or restarted,
			// fenced, the context ended): the whole poll is tried again.
			return nil, err
		}
		// Too large or invalid: the event gets an error record instead.
		refused = append(refused, refusedRecord{i: i, err: err})
	}
	return refused, nil
}

func (w *Worker) updateLag(fetches kgo.Fetches) {
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			lag := max(p.HighWatermark-(p.Records[n-1].Offset+1), 0)
			w.stats.lag.WithLabelValues(w.o.Group, p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(lag))
		}
	})
}
