package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/dlq"
	"kpipe/internal/jsonx"
)

// This file is the worker's consume path: the poll loop, decoding, the
// chain run a goroutine per partition, and the error records of a poll.

// loop polls until ctx ends, a fatal error or a test hook's kill. Each
// poll becomes a job in flight (worker_inflight.go); with w.mu held the
// jobs whose chain head has run are completed in order and a flush may
// start, then the rebalance the poll blocked is allowed (a rebalance
// drains the jobs in flight first). Jobs still in flight when it returns
// are dropped: their records were never marked.
func (w *Worker) loop(ctx context.Context, cl *kgo.Client) error {
	defer w.abandonInflight()
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
		// A background flush ending, or the oldest job in flight finishing
		// its chain head, cuts the poll short, so that its success records
		// and offsets, or its rows, go on at once.
		w.mu.Lock()
		j := w.flushes.running()
		head := w.headJob()
		w.mu.Unlock()
		stop := func() bool { return false }
		if j != nil {
			stop = context.AfterFunc(j.doneCtx, cancel)
		}
		stopHead := func() bool { return false }
		if head != nil {
			stopHead = context.AfterFunc(head.doneCtx, cancel)
		}
		w.mu.Lock()
		if len(w.toPause) > 0 {
			cl.PauseFetchPartitions(map[string][]int32{w.cfg.InputTopic: w.toPause})
			w.toPause = nil
		}
		w.mu.Unlock()
		fetches := cl.PollRecords(pctx, w.batchLimit())
		stop()
		stopHead()
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
		err := w.startPoll(ctx, fetches)
		if err == nil {
			err = w.completeReady(ctx)
		}
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
	// floor is st.floor when the poll was taken.
	floor int64
	recs  []*kgo.Record
	evs   []*Event
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

// decode turns b's records into events (one allocation for all of them),
// dropping those the table already holds; the ones that are not JSON
// objects go to b.failed.
func (w *Worker) decode(b *partBatch, hint int, now time.Time) {
	slab := make([]Event, len(b.recs))
	b.evs = make([]*Event, 0, len(b.recs))
	for i, r := range b.recs {
		if r.Offset <= b.floor {
			b.inTable++
			continue // already in the table
		}
		ev := &slab[i]
		*ev = Event{Raw: r.Value, Key: r.Key, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Received: now, Attempt: dlq.AttemptOf(r)}
		if n := len(r.Value); n > w.maxBytes {
			b.reject(ev, w.tooLarge(n))
			continue
		}
		// Alias: a record's value is never changed after the poll (the
		// client pools no buffers), so its strings need no copy.
		fields, err := jsonx.DecodeObjectOpts(r.Value, hint, jsonx.DecodeOptions{MaxDepth: w.maxDepth, Lazy: w.raw, Alias: true})
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
