package pipeline

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"kpipe/internal/sim"
)

// closeCounting is a memTable that counts its closes.
type closeCounting struct {
	*memTable
	closes atomic.Int32
}

func (c *closeCounting) Close(ctx context.Context) error {
	c.closes.Add(1)
	return c.memTable.Close(ctx)
}

// TestWorkerClose: Close releases the chain of a worker that never ran,
// once however often it is called; after Run it closes nothing twice.
func TestWorkerClose(t *testing.T) {
	e := newEnv(t, sim.Options{Seed: 1, Projects: 5})
	for _, run := range []bool{false, true} {
		tbl := &closeCounting{memTable: newMemTable()}
		w, err := NewWorker(t.Context(), e.worker, e.kopts(), registryWith(tbl), e.deps())
		if err != nil {
			t.Fatal(err)
		}
		if run {
			if err := runWorker(t, t.Context(), w)(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		}
		for range 2 {
			if err := w.Close(t.Context()); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		if got := tbl.closes.Load(); got != 1 {
			t.Fatalf("run %v: the table was closed %d times, want once", run, got)
		}
	}
}

// TestDeltaWriterLocation: the location the delta_writer of the iTel
// worker uses, as the handler itself computes it.
func TestDeltaWriterLocation(t *testing.T) {
	e := newEnv(t, sim.Options{Seed: 1, Projects: 5})
	var got string
	for _, h := range e.worker.EnrichmentHandlers {
		if h.Type == TypeDeltaWriter {
			loc, err := DeltaWriterLocation(h, "data")
			if err != nil {
				t.Fatal(err)
			}
			got = loc
		}
	}
	if want := filepath.Join("data", "delta", "itel_cabinet_task_tracking"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := (&DeltaWriterConfig{TableName: "t"}).location(""); err == nil {
		t.Fatal("no data folder and no location: got no error")
	}
}
