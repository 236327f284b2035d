package enrich

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

// Environment of the worker child process.
const (
	childEnv   = "KPIPE_ENRICH_CHILD"
	brokersEnv = "KPIPE_ENRICH_BROKERS"
	claimxEnv  = "KPIPE_ENRICH_CLAIMX"
)

// TestKillRestart kills the worker process with SIGKILL at random points
// while events stream in, restarts it each time, and checks that the
// tracking topic ends with every 32513 event exactly once, in order.
// KPIPE_SOAK_KILLS sets the number of kills (default 10).
func TestKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	kills := 10
	if v := os.Getenv("KPIPE_SOAK_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("KPIPE_SOAK_KILLS=%q: want a count", v)
		}
		kills = n
	}
	c := newCluster(t)
	s, url := startSim(t, 11, 80)
	addrs := strings.Join(c.ListenAddrs(), ",")
	ctx := t.Context()

	// Events stream in while the worker is being killed.
	rate := float64(s.Len()) / (0.7*float64(kills) + 1)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		cl := newClient(t, c.ListenAddrs(), kgo.ProducerLinger(5*time.Millisecond))
		err := s.Generate(ctx, sim.GenerateOptions{Rate: rate}, func(ctx context.Context, k, v []byte) error {
			cl.Produce(ctx, &kgo.Record{Topic: kafka.TopicEvents, Key: k, Value: v}, nil)
			return nil
		})
		if err == nil {
			err = cl.Flush(ctx)
		}
		if err != nil && ctx.Err() == nil {
			t.Errorf("publishing: %v", err)
		}
	}()

	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), childEnv+"=1", brokersEnv+"="+addrs, claimxEnv+"="+url)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// Counts what the workers produce, committed or not, so that each kill
	// lands while a worker is producing.
	var produced atomic.Int64
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch := newClient(t, c.ListenAddrs(), kgo.ConsumeTopics(trackingTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	go func() {
		for watchCtx.Err() == nil {
			produced.Add(int64(watch.PollFetches(watchCtx).NumRecords()))
		}
	}()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var restarts []time.Duration // from a (re)start to its first record
	for i := range kills {
		cmd := start()
		started := time.Now()
		from := produced.Load()
		for deadline := time.Now().Add(20 * time.Second); produced.Load() == from && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if i > 0 {
			restarts = append(restarts, time.Since(started))
		}
		// Every other kill lands as soon as records appear, most likely
		// inside an open transaction; the others at a random later point.
		if i%2 == 1 {
			time.Sleep(time.Duration(r.IntN(150)) * time.Millisecond)
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("kill %d after %v", i+1, time.Since(started).Round(time.Millisecond))
	}
	<-pubDone
	if len(restarts) > 0 {
		slices.Sort(restarts)
		median, worst := restarts[len(restarts)/2], restarts[len(restarts)-1]
		t.Logf("restart after kill -9 to consuming again: median %v, worst %v over %d restarts", median.Round(time.Millisecond), worst.Round(time.Millisecond), len(restarts))
		if worst > 10*time.Second {
			t.Errorf("a restarted worker took %v to consume again, want at most 10s", worst)
		}
	}
	before := readCommitted(t, c.ListenAddrs(), trackingTopic, 0, 10*time.Second, 300*time.Millisecond)
	if kills > 0 && len(before) == 0 {
		t.Fatal("the killed workers committed nothing: the kills did not hit a working worker")
	}
	cmd := start()
	want := s.Manifest().Count(sim.TemplateITelCabinet)
	got := readCommitted(t, c.ListenAddrs(), trackingTopic, want, 40*time.Second, time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker exited with %v after SIGTERM, want 0", err)
	}
	checkTracking(t, s, got)
	// Records of transactions the kills cut short stay in the log, aborted.
	all := readUncommitted(t, c.ListenAddrs(), trackingTopic, len(got))
	t.Logf("%d kills, %d events, %d tracking records (%d committed before the last start), each once and in order; %d aborted records in the log",
		kills, s.Len(), len(got), len(before), all-len(got))
}

// TestWorkerChild is the worker process of TestKillRestart; it runs only
// when started by it.
func TestWorkerChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("helper process of TestKillRestart")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	_, m := newMetrics()
	orch, cx := components(t, os.Getenv(claimxEnv), m, testLogger())
	w, err := New(Options{
		Kafka: kafka.Config{Brokers: strings.Split(os.Getenv(brokersEnv), ",")}, Fetcher: cx, Orchestrator: orch, Metrics: m,
		// The defaults: static membership with the transactional id as
		// instance id, so a restarted worker takes its place in the group
		// without waiting for the dead one's session to expire.
		Logger: testLogger(), TransactionalID: "kill-test", MaxBatch: 40,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// readUncommitted counts the records of topic, aborted ones included.
func readUncommitted(t *testing.T, addrs []string, topic string, atLeast int) int {
	cl := newClient(t, addrs, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	n := 0
	for quiet := 0; quiet < 3 || n < atLeast; {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		if k := fs.NumRecords(); k > 0 {
			n += k
			quiet = 0
		} else {
			quiet++
		}
	}
	return n
}
