package delta

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"kpipe/internal/s3test"
)

// Every fault of the proxy, on every call, ends in an error IsRetryable
// accepts once the SDK's retries run out: 5xx answers (applied or not),
// resets before and after the request reached the server, and a response
// slower than the caller's deadline. The worker then pauses instead of
// stopping.
func TestS3FaultsRetryable(t *testing.T) {
	srv := s3test.Start(t)
	px := srv.StartProxy(t)
	store, err := NewS3Storage(t.Context(), srv.Bucket, "faults", S3Options{Endpoint: px.Endpoint, PathStyle: true, Region: srv.Region, Credentials: srv.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	body := bytes.Repeat([]byte("0123456789"), 400)
	if err := store.Write(ctx, "k", body); err != nil {
		t.Fatalf("Write through the healthy proxy: %v", err)
	}
	px.SlowBy = 10 * time.Second
	for _, f := range []s3test.Fault{s3test.Fault500, s3test.Fault503, s3test.Fault500After, s3test.FaultResetBefore, s3test.FaultResetAfter, s3test.FaultSlow, s3test.FaultCloseBefore, s3test.FaultTruncate} {
		t.Run(f.String(), func(t *testing.T) {
			px.SetRule(s3test.Always(f))
			defer px.Heal()
			callCtx := ctx
			if f == s3test.FaultSlow {
				var cancel context.CancelFunc
				callCtx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
			}
			for _, op := range []struct {
				name string
				call func() error
			}{
				{"Read", func() error { _, err := store.Read(callCtx, "k"); return err }},
				{"List", func() error { _, err := store.List(callCtx, "", ""); return err }},
				{"Write", func() error { return store.Write(callCtx, "k", body) }},
				{"PutIfAbsent", func() error { return store.PutIfAbsent(callCtx, "_delta_log/p-"+f.String()+".json", []byte("x")) }},
				{"Delete", func() error { return store.Delete(callCtx, "k-missing") }},
			} {
				if f == s3test.FaultTruncate && op.name != "Read" && op.name != "List" {
					continue // no response body to cut
				}
				err := op.call()
				if err == nil {
					t.Fatalf("%s succeeded through fault %s", op.name, f)
				}
				if errors.Is(err, ErrExist) || errors.Is(err, ErrNotExist) {
					t.Fatalf("%s: %v: a fault is not a missing or existing key", op.name, err)
				}
				if !IsRetryable(err) {
					t.Errorf("%s through %s: IsRetryable(%v) = false, want true", op.name, f, err)
				}
			}
		})
	}
	if px.Injected(s3test.FaultResetAfter) == 0 || px.Injected(s3test.Fault503) == 0 {
		t.Fatal("the proxy injected nothing")
	}
}

// A PutIfAbsent whose first attempt lands but loses its answer meets its
// own object (412) on the next; when reading it back fails for a passing
// cause (503 SlowDown on every attempt the SDK makes), after the lost
// answer and again after the 412, it tries again instead of giving up
// with an error no caller retries (a 412 wrapped first: IsRetryable
// said no), and finds its own bytes.
func TestS3PutIfAbsentReadBackRetried(t *testing.T) {
	srv := s3test.Start(t)
	px := srv.StartProxy(t)
	store, err := NewS3Storage(t.Context(), srv.Bucket, "readback", S3Options{Endpoint: px.Endpoint, PathStyle: true, Region: srv.Region, Credentials: srv.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	var puts, gets atomic.Int32
	px.SetRule(func(r *http.Request) s3test.Fault {
		switch r.Method {
		case http.MethodPut:
			if puts.Add(1) == 1 {
				return s3test.Fault500After // applied, answer lost
			}
		case http.MethodGet:
			// The SDK's three attempts of the first two read backs: after
			// the lost answer, and after the 412 of the second put.
			if gets.Add(1) <= 6 {
				return s3test.Fault503
			}
		}
		return s3test.FaultNone
	})
	key, data := "_delta_log/00000000000000000000.json", []byte(`{"commitInfo":{}}`+"\n")
	if err := store.PutIfAbsent(t.Context(), key, data); err != nil {
		t.Fatalf("PutIfAbsent: %v (retryable: %v)", err, IsRetryable(err))
	}
	if px.Injected(s3test.Fault503) != 6 || px.Injected(s3test.Fault500After) != 1 || puts.Load() != 3 {
		t.Fatalf("faults injected: 503 %d, 500-after %d; %d puts: the read back was not made to fail",
			px.Injected(s3test.Fault503), px.Injected(s3test.Fault500After), puts.Load())
	}
	px.Heal()
	if err := store.PutIfAbsent(t.Context(), key, data); !errors.Is(err, ErrExist) {
		t.Fatalf("second PutIfAbsent of the key: %v, want ErrExist", err)
	}
}
