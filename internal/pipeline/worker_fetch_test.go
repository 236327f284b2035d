package pipeline

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"kpipe/internal/sim"
)

// fetch_max_bytes and fetch_max_partition_bytes reach the worker's fetch
// requests, and a record batch larger than them still comes whole: with a
// partition's at its 1 KiB floor, below one event's size, every event
// lands.
func TestWorkerFetchSizes(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 4, Projects: 10})
	want := e.entries()
	if len(want) > 60 {
		want = want[:60]
	}
	e.worker.FetchMaxBytes = 4096
	e.worker.FetchMaxPartitionBytes = 1024
	var mu sync.Mutex
	var maxBytes, partBytes []int32
	e.cluster.ControlKey(int16(kmsg.Fetch), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		req := kr.(*kmsg.FetchRequest)
		mu.Lock()
		defer mu.Unlock()
		for _, tp := range req.Topics {
			for _, p := range tp.Partitions {
				maxBytes = append(maxBytes, req.MaxBytes)
				partBytes = append(partBytes, p.PartitionMaxBytes)
			}
		}
		return nil, nil, false
	})
	tbl := newMemTable()
	w := newTestWorker(t, e, tbl)
	stop := runWorker(t, ctx, w)
	e.produceTracking(ctx, want)
	waitFor(t, 30*time.Second, "every row", func() bool { return len(tbl.snapshot()) == len(want) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkTimeline(t, tbl.snapshot(), want)
	mu.Lock()
	defer mu.Unlock()
	if len(maxBytes) == 0 {
		t.Fatal("no fetch request seen")
	}
	for i := range maxBytes {
		if maxBytes[i] != 4096 || partBytes[i] != 1024 {
			t.Fatalf("fetch request %d: max bytes %d, partition max bytes %d, want 4096 and 1024", i, maxBytes[i], partBytes[i])
		}
	}
}
