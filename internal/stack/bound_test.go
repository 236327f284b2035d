package stack

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/kafka"
)

// embedded starts an embedded broker on a free port, with its data in a
// folder of the test, and returns it with a client that produces to the
// partition each record names.
func embedded(t *testing.T) (*kafka.Embedded, *kgo.Client) {
	t.Helper()
	b, err := kafka.StartEmbedded(t.Context(), kafka.EmbeddedOptions{DataDir: t.TempDir(), SegmentBytes: embeddedSegmentBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return b, cl
}

// produceEach writes n records to each partition of topic, one batch each.
func produceEach(t *testing.T, cl *kgo.Client, topic string, partitions int32, n int) {
	t.Helper()
	for p := range partitions {
		for range n {
			r := &kgo.Record{Topic: topic, Partition: p, Value: []byte(strings.Repeat("v", 100))}
			if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func commit(t *testing.T, adm *kadm.Client, group, topic string, at map[int32]int64) {
	t.Helper()
	offs := kadm.Offsets{}
	for p, o := range at {
		offs.AddOffset(topic, p, o, -1)
	}
	resp, err := adm.CommitOffsets(t.Context(), group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

func starts(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	s, _, err := kafka.PartitionBounds(t.Context(), adm, topic)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTrim: the embedded broker drops the records of kpipe up's input
// topics up to the lowest offset any group has committed on each
// partition, never past it, nothing of a partition kpipe up's group has
// not committed on, nothing of a topic it does not read; and the topics
// keepNewest gave a retention.bytes keep only their newest records.
func TestTrim(t *testing.T) {
	b, cl := embedded(t)
	adm := kadm.NewClient(cl)
	ctx := t.Context()
	specs := keepNewest([]kafka.TopicSpec{
		{Name: "in", Partitions: 2, Retention: kafka.Retention(7 * 24 * time.Hour)},
		{Name: "errors", Partitions: 1, Retention: kafka.Retention(30 * 24 * time.Hour)},
		{Name: "success", Partitions: 1, Retention: kafka.Retention(3 * 24 * time.Hour)},
	}, 1000, "success")
	if _, err := kafka.EnsureTopics(ctx, cl, specs, 1); err != nil {
		t.Fatal(err)
	}
	produceEach(t, cl, "in", 2, 10)
	produceEach(t, cl, "errors", 1, 10)
	produceEach(t, cl, "success", 1, 30) // about 4,000 bytes
	tr := &trimmer{adm: adm, broker: b, gts: []groupTopic{{"own", "in"}}, log: slog.New(slog.DiscardHandler)}
	trim := func() {
		t.Helper()
		if _, err := tr.trim(ctx); err != nil {
			t.Fatal(err)
		}
	}

	trim() // nothing committed: nothing to drop
	if s := starts(t, adm, "in"); s[0] != 0 || s[1] != 0 {
		t.Fatalf("nothing committed, but the log starts at %v", s)
	}
	commit(t, adm, "own", "in", map[int32]int64{0: 6})
	commit(t, adm, "other", "in", map[int32]int64{0: 4, 1: 9})
	commit(t, adm, "dlq-cursor", "errors", map[int32]int64{0: 10})
	trim()
	if s := starts(t, adm, "in"); s[0] != 4 || s[1] != 0 {
		t.Fatalf("own at 6 and other at 4 on partition 0, own nothing on 1: the log starts at %v, want 4 and 0", s)
	}
	commit(t, adm, "other", "in", map[int32]int64{0: 8})
	trim()
	if s := starts(t, adm, "in"); s[0] != 6 {
		t.Fatalf("own at 6, other at 8: partition 0 starts at %d, want 6", s[0])
	}
	if s := starts(t, adm, "errors"); s[0] != 0 {
		t.Fatalf("a topic kpipe up does not read lost records: starts at %d", s[0])
	}
	s := starts(t, adm, "success")
	if s[0] == 0 || s[0] >= 30 {
		t.Fatalf("the success topic, 30 records of some 130 bytes kept to 1000 bytes, starts at %d", s[0])
	}
	// What is kept is still read.
	rc, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"in": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	fs := rc.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if first := fs.Records(); len(first) == 0 || first[0].Offset != 6 {
		t.Fatalf("reading partition 0 from its start: %d records, want the first at offset 6", len(first))
	}
}

// TestPacerWaits: the generator's sink waits, every lagCheckEvery events,
// while a group has more than max records left, goes on once it has
// committed, and gives up, naming what is left, when nothing moves.
func TestPacerWaits(t *testing.T) {
	_, cl := embedded(t)
	adm := kadm.NewClient(cl)
	ctx := t.Context()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "in"); err != nil {
		t.Fatal(err)
	}
	pub := kafka.NewPublisher(cl, "in")
	p := &pacer{adm: adm, gts: []groupTopic{{"g", "in"}}, max: 10, publish: func(ctx context.Context, k, v []byte) error {
		if err := pub.Publish(ctx, k, v); err != nil {
			return err
		}
		return pub.Flush(ctx) // the lag counts what the broker has
	}, log: slog.New(slog.DiscardHandler)}
	for i := range lagCheckEvery - 1 {
		if err := p.sink(ctx, nil, []byte("v")); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if n := p.paused.Load(); n != 0 {
		t.Fatalf("waited %d times before the %dth event", n, lagCheckEvery)
	}
	done := make(chan error, 1)
	go func() { done <- p.sink(ctx, nil, []byte("v")) }()
	for p.paused.Load() == 0 {
		select {
		case err := <-done:
			t.Fatalf("the %dth event with %d records left returned %v without waiting", lagCheckEvery, lagCheckEvery, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	commit(t, adm, "g", "in", map[int32]int64{0: lagCheckEvery - 5}) // 5 left
	if err := <-done; err != nil {
		t.Fatalf("after the commit: %v", err)
	}

	// Nothing moves: the wait gives up, saying what is left.
	p.timeout = 100 * time.Millisecond
	for range lagCheckEvery - 1 {
		if err := p.sink(ctx, nil, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	err := p.sink(ctx, nil, []byte("v"))
	if err == nil || !strings.Contains(err.Error(), "left in Kafka: in 1005 (group g)") {
		t.Fatalf("nothing moving: got %v, want an error naming the 1005 records left", err)
	}
}

// TestRunEventsEmbeddedTrims: a --events run on the embedded broker ends
// with the broker holding nothing of claimx.events, and nothing of the
// tracking worker's input below its committed offsets: every record the
// workers were done with was dropped, and the table still holds every
// tracked event once.
func TestRunEventsEmbeddedTrims(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	out := &syncBuffer{}
	o := Options{
		LoadConfig:  loadRepoConfig,
		ConfigDir:   repoConfig,
		DataDir:     t.TempDir(),
		Worker:      "itel_cabinet_tracking_worker",
		IDPrefix:    "stack-test-",
		Seed:        1,
		Events:      3000,
		WaitTimeout: time.Minute,
		Out:         out,
		Logger:      slog.New(slog.DiscardHandler),
	}
	s := runStack(t, o, out)
	if !strings.Contains(out.String(), "OK: the table holds every tracked event exactly once") {
		t.Fatalf("no OK:\n%s", out)
	}
	adm := kadm.NewClient(s.admin)
	held := int64(0)
	for p, start := range starts(t, adm, kafka.TopicEvents) {
		_, ends, err := kafka.PartitionBounds(t.Context(), adm, kafka.TopicEvents)
		if err != nil {
			t.Fatal(err)
		}
		held += ends[p] - start
	}
	if held != 0 {
		t.Fatalf("the broker still holds %d of the %d events the enrichment worker committed", held, o.Events)
	}
	track := s.lagOf[1]
	committed, err := adm.FetchOffsets(t.Context(), track.group)
	if err != nil {
		t.Fatal(err)
	}
	dropped := int64(0)
	for p, start := range starts(t, adm, track.topic) {
		c, ok := committed.Lookup(track.topic, p)
		if !ok || start != c.At {
			t.Fatalf("%s partition %d starts at %d, want the tracking worker's committed offset %+v", track.topic, p, start, c)
		}
		dropped += start
	}
	if dropped == 0 {
		t.Fatalf("nothing of %s was dropped", track.topic)
	}
}
