package enrich

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"kpipe/internal/claimx"
	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

// Environment of the broker child process of TestBrokerRestart.
const (
	brokerChildEnv = "KPIPE_ENRICH_BROKER_CHILD"
	brokerPortEnv  = "KPIPE_ENRICH_BROKER_PORT"
	brokerDirEnv   = "KPIPE_ENRICH_BROKER_DIR"
)

// broker is a one-broker cluster on a fixed port with a data folder, which
// a test stops and starts again: in this process (a clean close), or as a
// child process killed with SIGKILL.
type broker struct {
	t    *testing.T
	port int
	dir  string
	kill bool

	e   *kafka.Embedded
	cmd *exec.Cmd
}

func (b *broker) addrs() []string {
	return []string{net.JoinHostPort(kafka.DefaultHost, strconv.Itoa(b.port))}
}

func (b *broker) start() {
	t := b.t
	t.Helper()
	if !b.kill {
		e, err := kafka.StartEmbedded(t.Context(), kafka.EmbeddedOptions{Port: b.port, DataDir: b.dir,
			Extra: []kfake.Opt{kfake.GroupMinSessionTimeout(100 * time.Millisecond)}})
		if err != nil {
			t.Fatal(err)
		}
		b.e = e
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBrokerChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), brokerChildEnv+"=1", brokerPortEnv+"="+strconv.Itoa(b.port), brokerDirEnv+"="+b.dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b.cmd = cmd
	waitFor(t, 30*time.Second, "the broker process listening", func() bool {
		c, err := net.DialTimeout("tcp", b.addrs()[0], time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (b *broker) stop() {
	if b.e != nil {
		b.e.Close()
		b.e = nil
	}
	if b.cmd != nil {
		_ = b.cmd.Process.Kill() // SIGKILL: no flush, no cleanup
		_ = b.cmd.Wait()
		b.cmd = nil
	}
}

// freePort returns a port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(kafka.DefaultHost, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestBrokerRestart stops the broker (a clean close, or kill -9 of its
// process) while events stream in and the worker is publishing, and starts
// it again on the same port with the same data folder, a few times. Run
// never returns, Ready says ErrBrokerUnreachable while the broker is down
// and nil again after, the worker consumes again soon after the broker is
// back, and the tracking topic ends with every 32513 event exactly once,
// in order, with nothing in the error topic.
func TestBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("broker restart test skipped in -short mode")
	}
	for _, tc := range []struct {
		name string
		kill bool
	}{{"close", false}, {"kill9", true}} {
		t.Run(tc.name, func(t *testing.T) { testBrokerRestart(t, tc.kill) })
	}
}

func testBrokerRestart(t *testing.T, kill bool) {
	const restarts = 3
	b := &broker{t: t, port: freePort(t), dir: t.TempDir(), kill: kill}
	b.start()
	t.Cleanup(b.stop)
	ensureTopics(t, b.addrs())
	s, url := startSim(t, 29, 40)
	_, m := newMetrics()
	orch, cx := components(t, url, m, testLogger())
	ctx := t.Context()

	// The stream: paced so that it lasts through every restart, produced
	// by a client that waits for the broker as long as it takes.
	rate := float64(s.Len()) / (3*restarts + 2)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		cl := newClient(t, b.addrs(), kgo.ProducerLinger(5*time.Millisecond))
		err := s.Generate(ctx, sim.GenerateOptions{Rate: rate}, func(ctx context.Context, k, v []byte) error {
			cl.Produce(ctx, &kgo.Record{Topic: kafka.TopicEvents, Key: k, Value: v}, func(_ *kgo.Record, err error) {
				if err != nil && ctx.Err() == nil {
					t.Errorf("publishing: %v", err)
				}
			})
			return nil
		})
		if err == nil {
			err = cl.Flush(ctx)
		}
		if err != nil && ctx.Err() == nil {
			t.Errorf("publishing: %v", err)
		}
	}()

	r := runWorker(t, Options{Kafka: kafka.Config{Brokers: b.addrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, Logger: testLogger(),
		TransactionalID: "restart-" + strconv.FormatBool(kill), MaxBatch: 40})
	consumed := m.EnrichEventsConsumed.WithLabelValues(DefaultName)
	var back []time.Duration
	for i := range restarts {
		from := counterValue(consumed)
		waitFor(t, 60*time.Second, "the worker committing events", func() bool { return counterValue(consumed) > from })
		// Half the stops land right after a commit, most likely while the
		// next poll's transaction is open.
		b.stop()
		waitFor(t, 30*time.Second, "not ready with the broker down", func() bool { return errors.Is(r.w.Ready(ctx), ErrBrokerUnreachable) })
		r.alive(t)
		if i%2 == 1 {
			// Let the worker's own retries and the group's session time
			// run against the dead broker for a while.
			deadline := time.Now().Add(3 * time.Second)
			waitFor(t, 10*time.Second, "the outage to last", func() bool { return time.Now().After(deadline) })
			if err := r.w.Ready(ctx); !errors.Is(err, ErrBrokerUnreachable) {
				t.Fatalf("Ready = %v with the broker down, want ErrBrokerUnreachable", err)
			}
		}
		b.start()
		restarted := time.Now()
		at := counterValue(consumed)
		waitFor(t, 60*time.Second, "ready again", func() bool { return r.w.Ready(ctx) == nil })
		// Consuming again: more events committed, unless the stream had
		// ended and the worker had already committed it all.
		all := float64(s.Len())
		waitFor(t, 60*time.Second, "consuming again", func() bool { c := counterValue(consumed); return c > at || c >= all })
		back = append(back, time.Since(restarted))
		r.alive(t)
		t.Logf("restart %d: consuming again %v after the broker was back", i+1, time.Since(restarted).Round(time.Millisecond))
	}
	<-pubDone
	in := inputCounts(t, b.addrs())
	want, inputs := 0, 0
	for _, e := range s.Manifest().EventsForTemplate(sim.TemplateITelCabinet) {
		want += in[e.EventID]
	}
	for _, n := range in {
		inputs += n
	}
	// Every input record committed, and Run still going all along: a
	// shortfall says which of the two failed.
	waitFor(t, 60*time.Second, "every input record committed", func() bool {
		r.alive(t)
		return int(counterValue(consumed)) >= inputs
	})
	got := readCommitted(t, b.addrs(), trackingTopic, want, 60*time.Second, time.Second)
	r.alive(t)
	if err := r.stop(); err != nil {
		t.Fatalf("Run = %v after the stop, want nil", err)
	}
	if inputs == s.Len() {
		checkTracking(t, s, got)
	} else {
		// Only a killed broker does this; the worker is checked per input
		// record instead.
		t.Logf("the publisher wrote %d events twice", inputs-s.Len())
		checkPerInput(t, s, got, in)
	}
	if errs := readCommitted(t, b.addrs(), kafka.TopicEnrichmentErrors, 0, 10*time.Second, 500*time.Millisecond); len(errs) > 0 {
		t.Fatalf("%d error records, want none: %s", len(errs), errs[0].value)
	}
	if n := int(counterValue(consumed)); n != inputs {
		t.Errorf("kpipe_enrich_events_consumed_total = %d, want %d, the records in %s (each committed once)", n, inputs, kafka.TopicEvents)
	}
	slices.Sort(back)
	t.Logf("%d broker restarts (kill -9: %v), %d events, %d tracking records, one per input record; back to consuming: median %v, worst %v",
		restarts, kill, s.Len(), len(got), back[len(back)/2].Round(time.Millisecond), back[len(back)-1].Round(time.Millisecond))
	if worst := back[len(back)-1]; worst > 10*time.Second {
		t.Errorf("the worker took %v to consume again after the broker was back, want at most 10s", worst)
	}
}

// TestBrokerChild is the broker process of TestBrokerRestart; it runs only
// when started by it.
func TestBrokerChild(t *testing.T) {
	if os.Getenv(brokerChildEnv) != "1" {
		t.Skip("helper process of TestBrokerRestart")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	port, err := strconv.Atoi(os.Getenv(brokerPortEnv))
	if err != nil {
		t.Fatal(err)
	}
	// SyncWrites: what the broker acknowledged survives the kill, as it
	// would on a real broker with replicas; the test is about the worker.
	e, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{Port: port, DataDir: os.Getenv(brokerDirEnv), SyncWrites: true,
		Extra: []kfake.Opt{kfake.GroupMinSessionTimeout(100 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	<-ctx.Done()
}

// inputCounts counts the records of each event in claimx.events.
func inputCounts(t *testing.T, addrs []string) map[string]int {
	t.Helper()
	cl := newClient(t, addrs, kgo.ConsumeTopics(kafka.TopicEvents), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	n := make(map[string]int)
	for quiet := 0; quiet < 3; {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			quiet++
			continue
		}
		quiet = 0
		fs.EachRecord(func(r *kgo.Record) {
			ev, err := claimx.ParseEvent(r.Value)
			if err != nil {
				t.Fatalf("%s/%d/%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			n[ev.EventID]++
		})
	}
	return n
}

// checkPerInput checks, when the publisher wrote some events twice (a
// broker killed between storing a batch and acknowledging it forgets the
// producer's sequence numbers, and the resent batch is stored again), that
// each 32513 event has one tracking record per input record.
func checkPerInput(t *testing.T, s *sim.Sim, got []outRecord, in map[string]int) {
	t.Helper()
	out := make(map[string]int)
	for _, r := range got {
		var p struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(r.value, &p); err != nil {
			t.Fatal(err)
		}
		out[p.EventID]++
	}
	want := 0
	for _, e := range s.Manifest().EventsForTemplate(sim.TemplateITelCabinet) {
		if out[e.EventID] != in[e.EventID] {
			t.Fatalf("event %s: %d tracking records for %d input records", e.EventID, out[e.EventID], in[e.EventID])
		}
		want += in[e.EventID]
	}
	if len(got) != want {
		t.Fatalf("got %d tracking records, want %d", len(got), want)
	}
}

// TestProducerStateLost: the broker answers the worker's transactional
// produces with OUT_OF_ORDER_SEQUENCE_NUMBER, as a broker that lost the
// producer's sequence numbers in a restart does. No event is taken for a
// refused record: the transaction aborts, the worker gets a new session
// (kgo cannot recover that producer state) and publishes every event
// exactly once, with nothing in the error topic, without Run returning.
func TestProducerStateLost(t *testing.T) {
	c := newCluster(t)
	s, base := startSim(t, 31, 6)
	_, m := newMetrics()
	orch, cx := components(t, base, m, testLogger())
	var injected atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		if req.TransactionID == nil || injected.Load() >= 3 {
			return nil, nil, false
		}
		injected.Add(1)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.OutOfOrderSequenceNumber.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	publishWorld(t, t.Context(), newClient(t, c.ListenAddrs()), s, sim.GenerateOptions{})
	r := runWorker(t, Options{Kafka: kafka.Config{Brokers: c.ListenAddrs()}, Fetcher: cx, Orchestrator: orch, Metrics: m, Logger: testLogger(),
		TransactionalID: "state-lost", MaxBatch: 40})
	want := s.Manifest().Count(sim.TemplateITelCabinet)
	got := readCommitted(t, c.ListenAddrs(), trackingTopic, want, 60*time.Second, time.Second)
	r.alive(t)
	if injected.Load() == 0 {
		t.Fatal("no produce was answered OUT_OF_ORDER_SEQUENCE_NUMBER")
	}
	checkTracking(t, s, got)
	if errs := readCommitted(t, c.ListenAddrs(), kafka.TopicEnrichmentErrors, 0, 5*time.Second, 500*time.Millisecond); len(errs) > 0 {
		t.Fatalf("%d error records, want none: %s", len(errs), errs[0].value)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run = %v after the stop, want nil", err)
	}
	t.Logf("%d produces answered OUT_OF_ORDER_SEQUENCE_NUMBER; %d tracking records, each once and in order", injected.Load(), len(got))
}
