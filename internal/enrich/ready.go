package enrich

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Errors of Ready: each not-ready answer wraps ErrNotReady and one of the
// causes below.
var (
	// ErrNotReady is wrapped by every error Ready returns.
	ErrNotReady = errors.New("enrichment worker not ready")
	// ErrNotStarted means Run has not initialised its transactional
	// producer yet.
	ErrNotStarted = errors.New("not started")
	// ErrNotJoined means the worker is not (or no longer) a member of its
	// consumer group with an assignment.
	ErrNotJoined = errors.New("not joined to the consumer group")
	// ErrBrokerUnreachable means no Kafka broker answered the last health
	// check, or the worker is backing off from a transaction or producer
	// initialisation the broker did not complete; it wraps the client's
	// error.
	ErrBrokerUnreachable = errors.New("kafka broker unreachable")
	// ErrClaimXUnavailable means the worker holds a batch whose ClaimX
	// lookups keep failing (5xx, 429, timeouts, refused connections) and
	// has paused consuming; it wraps the last lookup error, which names the
	// connection, its host and the route.
	ErrClaimXUnavailable = errors.New("ClaimX API unavailable, consuming paused")
	// ErrStopped means Run has returned.
	ErrStopped = errors.New("stopped")
)

// Errors that end Run. Each wraps the Kafka or client error that caused it.
var (
	// ErrFenced means another process took this worker's transactional id
	// or group instance id: this one must exit.
	ErrFenced = errors.New("enrich: fenced by another process with the same identity")
	// ErrTransaction means the transactional producer cannot go on for a
	// reason that is neither a fence nor an authentication failure (an
	// error kgo reports as unrecoverable even in a new session).
	ErrTransaction = errors.New("enrich: kafka transaction failed")
	// ErrKafkaAuth means the broker refused this worker's credentials or
	// permissions.
	ErrKafkaAuth = errors.New("enrich: kafka refused authentication or authorisation")
	// ErrRecordRefused means Kafka kept refusing a record (isRefused: too
	// large, invalid) even as a cut-down error record.
	ErrRecordRefused = errors.New("enrich: kafka refused a record")
)

// isFenced reports whether err means another process owns this worker's
// identity: its transactional id (PRODUCER_FENCED) or its group instance id
// (FENCED_INSTANCE_ID). INVALID_PRODUCER_EPOCH is not taken for a fence on
// its own: a broker that restarted or timed the transaction out answers it
// too, and kgo recovers from it when it can. When it cannot, beginning the
// next transaction fails with it, and that is a fence (fatalBegin).
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.FencedInstanceID)
}

// isAuth reports whether err is an authentication or authorisation refusal.
func isAuth(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) || errors.Is(err, kerr.TopicAuthorizationFailed) ||
		errors.Is(err, kerr.GroupAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

// isRefused reports whether a produce error is about the record itself,
// so that producing it again can never succeed: too large (the broker's
// MESSAGE_TOO_LARGE or RECORD_LIST_TOO_LARGE, or kgo's own refusal of a
// record too large for a request, which is kerr.MessageTooLarge too), or
// INVALID_RECORD / INVALID_TOPIC_EXCEPTION. Every other produce error
// (the broker unreachable or restarting, OUT_OF_ORDER_SEQUENCE_NUMBER,
// UNKNOWN_PRODUCER_ID, a missing topic) is retried with the whole poll.
func isRefused(err error) bool {
	return isTooLarge(err) || errors.Is(err, kerr.InvalidRecord) || errors.Is(err, kerr.InvalidTopicException)
}

// kafkaClass is what the worker does about a Kafka error.
type kafkaClass int

const (
	// kafkaRetry: the broker is unreachable, restarting, busy or moved a
	// coordinator (dial errors, refused or reset connections, timeouts,
	// NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, CONCURRENT_TRANSACTIONS,
	// any retriable kerr), or it lost the producer's state: the
	// transaction is aborted, and the poll processed again after a pause.
	kafkaRetry kafkaClass = iota
	// kafkaRefused: a produced record is refused as it is (isRefused): its
	// event gets an error record instead.
	kafkaRefused
	// kafkaFatal: fenced (isFenced) or refused credentials or permissions
	// (isAuth): Run ends.
	kafkaFatal
)

func (c kafkaClass) String() string {
	switch c {
	case kafkaRefused:
		return "refused"
	case kafkaFatal:
		return "fatal"
	}
	return "retry"
}

// classify tells what to do about a Kafka error.
func classify(err error) kafkaClass {
	switch {
	case isFenced(err), isAuth(err):
		return kafkaFatal
	case isRefused(err):
		return kafkaRefused
	}
	return kafkaRetry
}

// fatalBegin reports whether an error beginning a transaction ends Run:
// kgo begins one after recovering the producer id when it can, so an
// INVALID_PRODUCER_EPOCH it could not recover from is a fence.
func fatalBegin(err error) bool {
	return classify(err) == kafkaFatal || errors.Is(err, kerr.InvalidProducerEpoch)
}

// fatal classifies an error that ends Run: ErrFenced, ErrKafkaAuth, or def.
func fatal(def error, what string, err error) error {
	switch {
	case isFenced(err), errors.Is(err, kerr.InvalidProducerEpoch):
		return fmt.Errorf("%w: %s: %w", ErrFenced, what, err)
	case isAuth(err):
		return fmt.Errorf("%w: %s: %w", ErrKafkaAuth, what, err)
	}
	return fmt.Errorf("%w: %s: %w", def, what, err)
}

// health is the worker's readiness state. Its methods are safe for
// concurrent use.
type health struct {
	mu      sync.Mutex
	started bool
	joined  bool
	stopped bool
	broker  error // last broker health check failure
	kafka   error // last Kafka failure the worker is backing off from
	paused  error // last ClaimX failure while paused
	fatal   error

	ready   prometheus.Gauge
	pausedG prometheus.Gauge
}

// Ready reports nil while the worker can do its work: Run has initialised
// its transactional producer, the worker is in its consumer group, a broker
// answers and ClaimX lookups are not failing. Otherwise it returns an error
// wrapping ErrNotReady and the cause (ErrNotStarted, ErrNotJoined,
// ErrBrokerUnreachable, ErrClaimXUnavailable, ErrStopped, or the error that
// ended Run). It is the /readyz check of "kpipe enrich"; it does not block.
func (w *Worker) Ready(context.Context) error { return w.health.err() }

func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.errLocked()
}

func (h *health) errLocked() error {
	switch {
	case h.fatal != nil:
		return fmt.Errorf("%w: %w", ErrNotReady, h.fatal)
	case h.stopped:
		return fmt.Errorf("%w: %w", ErrNotReady, ErrStopped)
	case h.broker != nil:
		return fmt.Errorf("%w: %w: %w", ErrNotReady, ErrBrokerUnreachable, h.broker)
	case h.kafka != nil:
		return fmt.Errorf("%w: %w: %w", ErrNotReady, ErrBrokerUnreachable, h.kafka)
	case !h.started:
		return fmt.Errorf("%w: %w", ErrNotReady, ErrNotStarted)
	case !h.joined:
		return fmt.Errorf("%w: %w", ErrNotReady, ErrNotJoined)
	case h.paused != nil:
		return fmt.Errorf("%w: %w: %w", ErrNotReady, ErrClaimXUnavailable, h.paused)
	}
	return nil
}

// update changes the state under the lock and sets the gauges.
func (h *health) update(f func(h *health)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
	if h.errLocked() == nil {
		h.ready.Set(1)
	} else {
		h.ready.Set(0)
	}
	if h.paused != nil && h.fatal == nil && !h.stopped {
		h.pausedG.Set(1)
	} else {
		h.pausedG.Set(0)
	}
}

// brokerInterval is how often the worker checks that a broker answers.
const brokerInterval = time.Second

// watchBroker pings the cluster every interval until ctx ends, recording
// whether a broker answers.
func (h *health) watchBroker(ctx context.Context, client func() *kgo.Client, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, max(interval, 3*time.Second))
		err := client().Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		h.update(func(h *health) { h.broker = err })
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
