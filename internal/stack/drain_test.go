package stack

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/dlq"
)

// TestGroupLags: a group has something left of its topic only where
// committed data records lie past its committed offset; the markers that
// end transactions, and aborted records, do not count.
func TestGroupLags(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	seeds := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	admin, err := kgo.NewClient(seeds...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	const topic = "t"
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	txn, err := kgo.NewClient(append(seeds, kgo.TransactionalID("tx"), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	// produce writes n records to partition p in one transaction, ended
	// as commit says, and returns the offset of the last.
	produce := func(p int32, n int, commit kgo.TransactionEndTry) int64 {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var last int64
		for range n {
			r, err := txn.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("v")}).First()
			if err != nil {
				t.Fatal(err)
			}
			last = r.Offset
		}
		if err := txn.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
		return last
	}
	commitAt := func(offsets map[int32]int64) {
		t.Helper()
		offs := kadm.Offsets{}
		for p, o := range offsets {
			offs.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
		}
		resp, err := adm.CommitOffsets(ctx, "g", offs)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	lagOf := func() topicLag {
		t.Helper()
		var l []topicLag
		// The markers of a transaction just ended may take a moment to
		// land: wait until the end offsets hold still.
		deadline := time.Now().Add(10 * time.Second)
		for {
			var err error
			if l, err = groupLags(ctx, admin, seeds, []groupTopic{{"g", topic}}); err != nil {
				t.Fatal(err)
			}
			again, err := groupLags(ctx, admin, seeds, []groupTopic{{"g", topic}})
			if err != nil {
				t.Fatal(err)
			}
			if again[0] == l[0] || time.Now().After(deadline) {
				return again[0]
			}
		}
	}

	if l := lagOf(); l.Records != 0 || l.End != 0 {
		t.Fatalf("an empty topic: %+v", l)
	}
	last0 := produce(0, 3, kgo.TryCommit)
	last1 := produce(1, 2, kgo.TryCommit)
	// Nothing committed: everything from the log's start is left (data and
	// markers: 3+1 and 2+1).
	if l := lagOf(); l.Records != 7 {
		t.Fatalf("nothing committed: %+v, want 7 left", l)
	}
	commitAt(map[int32]int64{0: last0, 1: last1 + 1})
	if l := lagOf(); l.Records == 0 {
		t.Fatalf("partition 0's last record not committed, but nothing left: %+v", l)
	}
	// Committed past the last data records: only the commit markers follow.
	commitAt(map[int32]int64{0: last0 + 1, 1: last1 + 1})
	if l := lagOf(); l.Records != 0 {
		t.Fatalf("committed up to the markers: %+v", l)
	}
	// An aborted transaction after them: its records never count.
	produce(0, 2, kgo.TryAbort)
	if l := lagOf(); l.Records != 0 {
		t.Fatalf("aborted records past the committed offset: %+v", l)
	}
	// A committed one does.
	produce(1, 1, kgo.TryCommit)
	if l := lagOf(); l.Records == 0 {
		t.Fatalf("a committed record past the committed offset, but nothing left: %+v", l)
	}
}

// TestErroredEvents: the tracked events whose messages are on an error
// topic past the offsets given, unless their rows were written all the same.
func TestErroredEvents(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	seeds := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	cl, err := kgo.NewClient(append(seeds, kgo.DefaultProduceTopic("errs"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "errs"); err != nil {
		t.Fatal(err)
	}
	put := func(id string, written bool) {
		t.Helper()
		r := dlq.NewRecord("w", dlq.Source{Topic: "in", Value: []byte(`{"event_id":"` + id + `"}`)},
			dlq.Failure{Handler: "h", Class: dlq.ClassValidation, Err: errors.New("bad"), RowWritten: written}, time.Now())
		if err := cl.ProduceSync(ctx, r.KafkaRecord("errs", dlq.DefaultMaxRecordBytes)).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	put("old", false) // before this run
	from, err := endOffsets(ctx, cl, "errs")
	if err != nil {
		t.Fatal(err)
	}
	put("a", false)
	put("b", true)
	put("x", false) // not tracked
	got, err := erroredEvents(context.WithoutCancel(ctx), cl, seeds, from, map[string]bool{"a": true, "b": true, "old": true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got["a"] {
		t.Fatalf("got %v, want [a]", got)
	}
}
