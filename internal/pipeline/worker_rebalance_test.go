package pipeline

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"kpipe/internal/sim"
)

// Two workers of one group share a table. The first one's background flush
// is held in flight while the second joins, so that partitions are revoked
// from the first while it is writing them: every event still lands once,
// whichever worker ends up writing it.
func TestWorkerRevokeDuringBackgroundFlush(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 1, Projects: 60})
	want := e.entries()
	half := len(want) / 2
	tbl := newMemTable()
	inFlight, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	tbl.beforeCommit = func() error {
		held := false
		once.Do(func() { held = true })
		if held {
			close(inFlight)
			<-release
		}
		return nil
	}
	a := newTestWorker(t, e, tbl)
	stopA := runWorker(t, ctx, a)
	e.produceTracking(ctx, want[:half])
	select {
	case <-inFlight:
	case <-time.After(30 * time.Second):
		t.Fatal("no flush started")
	}

	b := newTestWorker(t, e, tbl)
	stopB := runWorker(t, ctx, b)
	// Release the held flush only once the group is rebalancing, so that
	// the revoke meets it in flight.
	adm := kadm.NewClient(e.prod)
	waitFor(t, 30*time.Second, "the group rebalancing", func() bool {
		gs, err := adm.DescribeGroups(ctx, e.worker.ConsumerGroup)
		if err != nil {
			return false
		}
		g, ok := gs[e.worker.ConsumerGroup]
		return ok && (g.State == "PreparingRebalance" || g.State == "CompletingRebalance" || len(g.Members) == 2)
	})
	close(release)
	e.produceTracking(ctx, want[half:])
	waitFor(t, 60*time.Second, "every row", func() bool { return len(tbl.snapshot()) >= len(want) })
	if err := stopB(); err != nil {
		t.Fatalf("worker b: %v", err)
	}
	if err := stopA(); err != nil {
		t.Fatalf("worker a: %v", err)
	}
	checkTimeline(t, tbl.snapshot(), want)
}
