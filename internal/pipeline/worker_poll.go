package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/dlq"
	"kpipe/internal/jsonx"
)

// This file is the worker's consume path: the poll loop, decoding, the
// chain run a goroutine per partition, and the error records of a poll.

// loop polls until ctx ends, a fatal error or a test hook's kill; each
// poll is processed and may start a flush, with w.mu held, then the
// rebalance it blocked is allowed.
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
		j := w.flushes.running()
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
				if he := ev.Errors[0]; he.Handler == handlerDecode {
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
			b.reject(ev, w.tooLarge(n))
			continue
		}
		fields, err := jsonx.DecodeObjectOpts(r.Value, hint, jsonx.DecodeOptions{MaxDepth: w.maxDepth})
		if err != nil {
			b.reject(ev, w.undecodable(err))
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
