// Package enrich is the enrichment worker: it consumes ClaimX events from
// claimx.events, fetches the task-assignment and project rows of task events
// from the ClaimX API, runs the plugin orchestrator, and produces what the
// plugins publish, exactly once.
//
// Each poll is one Kafka transaction (franz-go's GroupTransactSession): the
// plugins' records, the error records and the consumed offsets commit
// together or not at all, so after a crash or a rebalance the uncommitted
// events are processed again and their earlier output, never committed, is
// invisible to read_committed consumers.
//
// Within a poll, the lookups run concurrently (bounded, coalesced per key,
// cached with a TTL); the plugins then run over the events in their
// partition's order, so the output keeps each assignment's order (a task's
// events share a project and therefore an input partition, and the output is
// keyed by assignment_id).
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
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/kafka"
	"kpipe/internal/metrics"
	"kpipe/internal/plugin"
)

// Defaults of Options.
const (
	DefaultName         = "claimx_enrichment_worker"
	DefaultGroup        = "claimx_enrichment_worker_group"
	DefaultCacheTTL     = 60 * time.Second
	DefaultCacheSize    = 100_000
	DefaultConcurrency  = 32
	DefaultMaxBatch     = 10_000
	DefaultDrainTimeout = 30 * time.Second
)

// Fetcher fetches ClaimX rows; *claimx.Client is one. It must be safe for
// concurrent use; it is expected to retry transient failures itself and to
// return an error only when the row cannot be had.
type Fetcher interface {
	TaskAssignment(ctx context.Context, assignmentID int64) (claimx.Row, error)
	Project(ctx context.Context, projectID string) (claimx.Row, error)
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
	// cancelled. Default 30s.
	DrainTimeout time.Duration
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
	return errors.Join(errs...)
}

// Worker is the enrichment worker. Build it with New and run it with Run.
type Worker struct {
	o     Options
	log   *slog.Logger
	proc  *processor
	sess  *kgo.GroupTransactSession
	stats workerStats
	ready atomic.Bool
}

// ErrNotReady is returned by Ready before the worker has joined Kafka.
var ErrNotReady = errors.New("enrichment worker not running yet")

// Ready reports nil once Run has initialised its transactional producer and
// until it stops; it is the /readyz check of "kpipe enrich".
func (w *Worker) Ready(context.Context) error {
	if !w.ready.Load() {
		return ErrNotReady
	}
	return nil
}

type workerStats struct {
	consumed prometheus.Counter
	lag      *prometheus.GaugeVec
}

// New builds a worker and its Kafka session; nothing is consumed until Run.
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
	)
	opts = append(opts, o.KafkaOpts...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka session: %w", err)
	}
	w.sess = sess
	return w, nil
}

// Run consumes until ctx is cancelled, then finishes and commits the poll in
// hand (within DrainTimeout), leaves the group and returns nil. It returns an
// error when the transaction state is lost (for example, another process took
// over the same transactional id); the caller should exit.
func (w *Worker) Run(ctx context.Context) error {
	defer w.sess.Close()
	// Initialise the producer ID first: with a transactional id a previous
	// incarnation used, this aborts the transaction it left open, whose
	// pending offsets would otherwise hold the group's offset fetch until
	// the transaction timed out.
	if _, _, err := w.sess.Client().ProducerID(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("initialising transactional producer %q: %w", w.o.TransactionalID, err)
	}
	w.ready.Store(true)
	defer w.ready.Store(false)
	w.log.Info("enrich_started", "topic", w.o.Topic, "group", w.o.Group, "transactional_id", w.o.TransactionalID, "plugins", w.o.Orchestrator.Names())
	for {
		fetches := w.sess.PollRecords(ctx, w.o.MaxBatch)
		if fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				w.log.Warn("fetch_failed", "topic", t, "partition", p, "err", err)
			}
		})
		if fetches.NumRecords() > 0 {
			// The poll in hand is finished even when ctx is cancelled.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.o.DrainTimeout)
			err := w.transact(wctx, fetches)
			cancel()
			if err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			w.log.Info("enrich_stopped")
			return nil
		}
	}
}

// transact processes one poll in one transaction.
func (w *Worker) transact(ctx context.Context, fetches kgo.Fetches) error {
	if err := w.sess.Begin(); err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	recs := fetches.Records()
	batch, perr := w.proc.process(ctx, recs)
	var produceErr error
	if perr == nil {
		produceErr = w.produce(ctx, batch)
	}
	commit := kgo.TryCommit
	if perr != nil || produceErr != nil {
		commit = kgo.TryAbort
	}
	committed, err := w.sess.End(ctx, commit)
	switch {
	case err != nil:
		if batch != nil {
			w.o.Orchestrator.PublishFailed(&batch.out)
		}
		if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) {
			return fmt.Errorf("transactional id %q fenced by another process: %w", w.o.TransactionalID, err)
		}
		return fmt.Errorf("ending transaction: %w", err)
	case committed:
		w.stats.consumed.Add(float64(len(recs)))
		w.proc.committed(batch)
		w.updateLag(fetches)
	default:
		if batch != nil && produceErr != nil {
			w.o.Orchestrator.PublishFailed(&batch.out)
		}
		// Aborted (rebalance, produce failure, lookups cut short): the
		// session rewound to the committed offsets; these events come again.
		w.log.Warn("transaction_aborted", "events", len(recs), "process_err", perr, "produce_err", produceErr)
	}
	return nil
}

// produce sends the batch's records, in order, and waits for them.
func (w *Worker) produce(ctx context.Context, b *batch) error {
	if len(b.send) == 0 {
		return nil
	}
	done := make(chan error, 1)
	var (
		mu        sync.Mutex
		remaining = len(b.send)
		first     error
	)
	promise := func(_ *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && first == nil {
			first = err
		}
		if remaining--; remaining == 0 {
			done <- first
		}
	}
	for _, r := range b.send {
		w.sess.Produce(ctx, r, promise)
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Worker) updateLag(fetches kgo.Fetches) {
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			lag := max(p.HighWatermark-(p.Records[n-1].Offset+1), 0)
			w.stats.lag.WithLabelValues(w.o.Group, p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(lag))
		}
	})
}
