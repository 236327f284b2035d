package enrich

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The hold: a poll is enriched before its transaction begins, and held,
// with consuming paused, for as long as its ClaimX lookups fail as
// unavailable.

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
