package enrich

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The transaction: an enriched poll is produced and committed in one Kafka
// transaction, and every Kafka failure on the way is aborted, backed off
// from and retried, or ends Run.

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
	w.recordTxn(b)
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
