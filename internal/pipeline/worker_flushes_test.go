package pipeline

import (
	"context"
	"errors"
	"testing"
)

// runOnce is a flushes.run that commits once, without retries.
func runOnce(ctx context.Context, commit func(context.Context) (*FlushResult, error)) (*FlushResult, error) {
	return commit(ctx)
}

func TestFlushesBackgroundAndWait(t *testing.T) {
	f := &flushes{run: runOnce}
	release := make(chan struct{})
	j := &flushJob{commit: func(ctx context.Context) (*FlushResult, error) {
		<-release
		return &FlushResult{Version: 7}, nil
	}}
	f.start(t.Context(), j, true)
	if f.running() != j || j.done() {
		t.Fatal("a background flush must be running and not done")
	}
	close(release)
	got, err := f.wait(t.Context())
	if err != nil || got != j || got.res.Version != 7 {
		t.Fatalf("wait: %v %v", got, err)
	}
	if f.running() != nil || f.failed != nil {
		t.Fatal("nothing may be left after a flush that succeeded")
	}
}

// A failed flush is kept and committed again, with the same batch, before
// any later one; until then its error is what the worker sees.
func TestFlushesFailedIsRetried(t *testing.T) {
	f := &flushes{run: runOnce}
	calls := 0
	boom := errors.New("storage down")
	j := &flushJob{commit: func(context.Context) (*FlushResult, error) {
		calls++
		if calls == 1 {
			return nil, boom
		}
		return &FlushResult{Version: 3}, nil
	}}
	f.start(t.Context(), j, false)
	if _, err := f.wait(t.Context()); !errors.Is(err, boom) {
		t.Fatalf("wait: %v, want the flush's error", err)
	}
	if f.failed != j {
		t.Fatal("the failed flush must be kept")
	}
	got, err := f.retryFailed(t.Context())
	if err != nil || got != j || got.res.Version != 3 || calls != 2 {
		t.Fatalf("retryFailed: %v %v after %d calls", got, err, calls)
	}
	if f.failed != nil {
		t.Fatal("a flush committed again must not be kept")
	}
}

// Out of time (a revoke's deadline), the flush in flight is stopped and
// kept as failed; when only the background run's context ended (a graceful
// stop), it is committed again with the caller's context at once.
func TestFlushesDeadlineAndGracefulStop(t *testing.T) {
	blockUntilCancelled := func(ctx context.Context) (*FlushResult, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	f := &flushes{run: runOnce}
	j := &flushJob{commit: blockUntilCancelled}
	f.start(t.Context(), j, true)
	expired, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.wait(expired); !errors.Is(err, context.Canceled) || f.failed != j {
		t.Fatalf("wait out of time: %v, failed %v", err, f.failed)
	}

	runCtx, stopRun := context.WithCancel(t.Context())
	calls := 0
	j2 := &flushJob{commit: func(ctx context.Context) (*FlushResult, error) {
		calls++
		if calls == 1 {
			return blockUntilCancelled(ctx)
		}
		return &FlushResult{Version: 9}, nil
	}}
	f = &flushes{run: runOnce}
	f.start(runCtx, j2, true)
	stopRun()
	got, err := f.wait(t.Context())
	if err != nil || got != j2 || got.res.Version != 9 || calls != 2 {
		t.Fatalf("graceful stop: %v %v after %d calls", got, err, calls)
	}
}

func TestFlushesAbandon(t *testing.T) {
	f := &flushes{run: runOnce}
	j := &flushJob{commit: func(ctx context.Context) (*FlushResult, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	f.start(t.Context(), j, true)
	f.abandon()
	if !j.done() || f.running() != nil || f.failed != nil {
		t.Fatal("abandon must stop the flush, wait for it and keep nothing")
	}
}
