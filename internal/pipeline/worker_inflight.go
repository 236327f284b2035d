package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/config"
)

// This file is the worker's polls in flight. A poll becomes a pollJob:
// its records are decoded and run through the chain's head (every handler
// before the buffering one: transform, validation, lookups) in the
// background, a goroutine per partition, while the loop polls again, up
// to polls_in_flight jobs at once. Jobs complete in poll order, under
// w.mu: the buffering handler (delta_writer) takes each job's events, the
// job's error records are published and its partitions' marks move on. So
// a slow lookup holds back only the rows behind it in the queue, never the
// polls and lookups after it; rows reach the writer in offset order per
// partition; flushes (one commit each) cover completed jobs only, so the
// table's txn versions and offsets stay exactly-once. A rebalance drains
// the queue first (onRevoked completes every job, then flushes; onLost
// drops the lost partitions' batches).

// pollJob is one poll in flight.
type pollJob struct {
	batches []*partBatch
	n       int
	// done is closed when every batch went through the chain's head.
	done chan struct{}
	// doneCtx is cancelled with done, to cut the next poll short.
	doneCtx  context.Context
	markDone context.CancelFunc
}

func (j *pollJob) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

func (w *Worker) pollsInFlight() int {
	if n := w.cfg.PollsInFlight; n > 0 {
		return min(n, config.MaxPollsInFlight)
	}
	return config.DefaultPollsInFlight
}

// headJob returns the oldest job in flight, nil when none. Callers hold
// w.mu.
func (w *Worker) headJob() *pollJob {
	if len(w.inflight) == 0 {
		return nil
	}
	return w.inflight[0]
}

// startPoll turns a poll's records into a job and starts its chain head in
// the background. Callers hold w.mu.
func (w *Worker) startPoll(ctx context.Context, fetches kgo.Fetches) error {
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
		batches = append(batches, &partBatch{part: p.Partition, st: st, floor: st.floor, recs: recs, last: recs[len(recs)-1], n: len(recs)})
	})
	if len(batches) == 0 {
		return nil
	}
	j := &pollJob{batches: batches, done: make(chan struct{})}
	j.doneCtx, j.markDone = context.WithCancel(context.Background())
	for _, b := range batches {
		j.n += b.n
	}
	w.consumed.Add(float64(j.n))
	w.batchSize.Observe(float64(j.n))
	hint := int(w.fieldHint.Load())
	w.inflight = append(w.inflight, j)
	go func() {
		defer func() { close(j.done); j.markDone() }()
		run := func(b *partBatch) {
			w.decode(b, hint, now)
			b.out, b.failed, b.err = w.chain.processHead(ctx, b.evs, b.failed)
			w.noteFieldCount(b.out)
		}
		if len(batches) == 1 {
			run(batches[0])
			return
		}
		var wg sync.WaitGroup
		for _, b := range batches {
			wg.Go(func() { run(b) })
		}
		wg.Wait()
	}()
	return nil
}

// noteFieldCount raises the decode's map size hint to the most fields an
// event of evs has after the chain's head; the tail's buffering handler
// may trim what it keeps of an event (RetainFields).
func (w *Worker) noteFieldCount(evs []*Event) {
	most := 0
	for _, ev := range evs {
		most = max(most, len(ev.Fields))
	}
	most = min(most, maxFieldHint)
	if int64(most) > w.fieldHint.Load() {
		w.fieldHint.Store(int64(most)) // a racy max is good enough for a size hint
	}
}

// completeReady completes the jobs at the front of the queue whose head
// has run, and waits for the oldest while the queue is full. Callers hold
// w.mu.
func (w *Worker) completeReady(ctx context.Context) error {
	for len(w.inflight) > 0 {
		j := w.inflight[0]
		if len(w.inflight) < w.pollsInFlight() && !j.finished() {
			return nil
		}
		<-j.done
		w.inflight = w.inflight[1:]
		if err := w.completePoll(ctx, j); err != nil {
			return err
		}
	}
	return nil
}

// drainInflight completes every job in flight, in order (before a
// rebalance moves partitions, or a final flush). Callers hold w.mu.
func (w *Worker) drainInflight(ctx context.Context) error {
	for len(w.inflight) > 0 {
		j := w.inflight[0]
		<-j.done
		w.inflight = w.inflight[1:]
		w.drained.Add(1)
		if err := w.completePoll(ctx, j); err != nil {
			w.abandonInflightLocked()
			return err
		}
	}
	return nil
}

// dropInflight removes the batches of parts from the jobs in flight (the
// partitions were lost: nothing of them may be written). Callers hold w.mu.
func (w *Worker) dropInflight(parts []int32) {
	for _, j := range w.inflight {
		<-j.done
		kept := j.batches[:0]
		for _, b := range j.batches {
			lost := false
			for _, p := range parts {
				lost = lost || b.part == p
			}
			if !lost {
				kept = append(kept, b)
			}
		}
		j.batches = kept
	}
}

// abandonInflight waits for the jobs in flight and drops them: their
// records were polled but never marked, so they are consumed again by the
// next owner of their partitions.
func (w *Worker) abandonInflight() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.abandonInflightLocked()
}

func (w *Worker) abandonInflightLocked() {
	for _, j := range w.inflight {
		<-j.done
	}
	w.inflight = nil
}

// completePoll runs j's events through the buffering handler, a goroutine
// per partition, publishes their error records and moves the partitions'
// marks on. Callers hold w.mu.
func (w *Worker) completePoll(ctx context.Context, j *pollJob) error {
	batches := j.batches
	if len(batches) == 0 {
		return nil
	}
	tail := func(b *partBatch) {
		if b.err != nil {
			return
		}
		b.out, b.failed, b.err = w.chain.processTail(ctx, b.out, b.failed)
	}
	if len(batches) == 1 {
		tail(batches[0])
	} else {
		var wg sync.WaitGroup
		for _, b := range batches {
			wg.Go(func() { tail(b) })
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
		if w.parts[b.part] != b.st {
			continue // forgotten meanwhile (cannot happen: rebalances drain first)
		}
		b.st.last = b.last
		w.failedC.Add(float64(len(b.failed)))
	}
	if w.flusher == nil {
		w.succeeded(ctx, batches, "", -1)
	}
	if w.hooks.AfterBatch != nil {
		if err := w.hooks.AfterBatch(j.n); err != nil {
			return err
		}
	}
	return nil
}
