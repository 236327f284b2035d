package pipeline

import (
	"context"
	"errors"
	"kpipe/internal/clock"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// This file is the worker's flushing: flushes (the scheduling: one flush
// in flight in the background while the next batch fills, a failed one
// committed again before any later one), the worker's side of it (cutting
// marks, completing what a flush made durable), storage outages retried
// with fetching paused, offsets committed for what is durable, and the
// flush before partitions move to another member.

func newBackoff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 50 * time.Millisecond
	bo.MaxInterval = 5 * time.Second
	return bo
}

// flushJob is one flush: the marks it commits and, with an AsyncFlusher,
// the batch it took, committed in the background while the next polls are
// handled.
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

// flushes schedules the worker's flushes: at most one runs at a time (in
// the background, or to its end), so at most one batch is being written
// while the next one fills, and a flush that failed is committed again
// before any later one. It knows nothing of partitions or records: run
// commits a job (retrying storage outages), and the worker completes what
// a job made durable. Its methods are called with the worker's mu held.
type flushes struct {
	run func(ctx context.Context, commit func(context.Context) (*FlushResult, error)) (*FlushResult, error)
	// inflight is the flush running, failed a flush that failed and must
	// be committed again before any later one.
	inflight, failed *flushJob
}

// start runs j: in the background when background is set, else to its
// end (its result is then collected by the next wait).
func (f *flushes) start(ctx context.Context, j *flushJob, background bool) {
	j.doneCtx, j.markDone = context.WithCancel(context.Background())
	if !background {
		j.res, j.err = f.run(ctx, j.commit)
		j.markDone()
		j.cancel = func() {}
		f.inflight = j
		return
	}
	j.ctx, j.cancel = context.WithCancel(ctx)
	f.inflight = j
	go func() {
		defer j.markDone()
		j.res, j.err = f.run(j.ctx, j.commit)
	}()
}

// running returns the flush in flight, nil when there is none.
func (f *flushes) running() *flushJob { return f.inflight }

// wait waits for the flush in flight and returns it when it succeeded (its
// result in res), for the worker to complete. One that failed is kept as
// failed and its error returned; when the background run's context ended
// under it but ctx did not (a graceful stop), it is committed again with
// ctx first. Out of time (ctx ends first), the flush is stopped and kept.
func (f *flushes) wait(ctx context.Context) (*flushJob, error) {
	j := f.inflight
	if j == nil {
		return nil, nil
	}
	select {
	case <-j.doneCtx.Done():
	case <-ctx.Done():
		j.cancel()
		<-j.doneCtx.Done()
	}
	f.inflight = nil
	j.cancel()
	if j.err != nil {
		f.failed = j
		if j.ctx != nil && j.ctx.Err() != nil && ctx.Err() == nil && !errors.Is(j.err, ErrKilled) {
			return f.retryFailed(ctx)
		}
		return nil, j.err
	}
	return j, nil
}

// retryFailed commits the failed flush again, to its end, and returns it
// with its new result once it succeeded.
func (f *flushes) retryFailed(ctx context.Context) (*flushJob, error) {
	j := f.failed
	if j == nil {
		return nil, nil
	}
	res, err := f.run(ctx, j.commit)
	if err != nil {
		return nil, err
	}
	f.failed = nil
	j.res, j.err = res, nil
	return j, nil
}

// abandon stops the flush in flight and waits for it, keeping nothing of
// it (a crash, or a stop after a failure).
func (f *flushes) abandon() {
	if j := f.inflight; j != nil {
		j.cancel()
		<-j.doneCtx.Done()
		f.inflight = nil
	}
}

// maybeFlush collects a background flush that has ended, starts a flush
// when the buffer is due, or commits offsets when nothing is buffered and
// some handled offsets are not committed yet. Callers hold w.mu.
func (w *Worker) maybeFlush(ctx context.Context) error {
	if j := w.flushes.running(); j != nil && j.done() {
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
		if !next.IsZero() || w.flushes.running() != nil {
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
	w.flushes.start(ctx, j, async && !wait)
	if !async || wait {
		return w.finishFlush(ctx)
	}
	return nil
}

// finishFlush waits for the flush in flight, if any, then publishes its
// success records and commits the offsets it made durable. A flush that
// failed is kept, to be committed again before any later one. Callers hold
// w.mu (the flush itself never takes it).
func (w *Worker) finishFlush(ctx context.Context) error {
	j, err := w.flushes.wait(ctx)
	if err != nil || j == nil {
		return err
	}
	return w.completeFlush(ctx, j, j.res)
}

// retryFailed commits a failed flush again, to its end.
func (w *Worker) retryFailed(ctx context.Context) error {
	j, err := w.flushes.retryFailed(ctx)
	if err != nil || j == nil {
		return err
	}
	return w.completeFlush(ctx, j, j.res)
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
	w.recordFlush(res)
	if res.Skipped > 0 {
		w.skipped.WithLabelValues(SkipInTable).Add(float64(res.Skipped))
	}
	if res.Duplicates > 0 {
		w.skipped.WithLabelValues(SkipDuplicate).Add(float64(res.Duplicates))
		w.deps.Metrics.DuplicatesDropped.WithLabelValues(w.cfg.Name, res.Table).Add(float64(res.Duplicates))
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
// of it. Callers hold w.mu.
func (w *Worker) abandonFlush() { w.flushes.abandon() }

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
		if clock.Sleep(ctx, d) != nil {
			return nil, err
		}
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
	if err := w.drainInflight(fctx); err != nil {
		w.log.Warn("completing_polls_on_revoke_failed", "error", err)
	}
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
	w.dropInflight(lost[w.cfg.InputTopic])
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
