package dlq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	input    = "itel.cabinet.task.tracking"
	errTopic = "itel.cabinet.task.tracking.errors"
)

func newCluster(t *testing.T) (*kgo.Client, []kgo.Opt) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, input), kfake.SeedTopics(1, errTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	seeds := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	cl, err := kgo.NewClient(seeds...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, seeds
}

func publish(t *testing.T, cl *kgo.Client, recs ...Record) {
	t.Helper()
	for _, r := range recs {
		b, err := r.Marshal(64 << 10)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: errTopic, Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// readInput reads the input topic until it holds want records (or 15 s
// pass), then polls a little longer so that extra records show too.
func readInput(t *testing.T, seeds []kgo.Opt, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(seeds, kgo.ConsumeTopics(input))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(15 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		out = append(out, cl.PollFetches(ctx).Records()...)
		cancel()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	return append(out, cl.PollFetches(ctx).Records()...)
}

func rec(class string, value string, written bool, attempt int) Record {
	r := Record{Worker: "w", Topic: input, Key: "k-" + value, Handler: class, Class: class, Message: "m",
		RowWritten: written, Attempt: attempt, FailedAt: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	r.SetOriginal([]byte(value))
	return r
}

func TestReplay(t *testing.T) {
	cl, seeds := newCluster(t)
	publish(t, cl,
		rec("validation", `{"event_id":"a"}`, false, 1),
		rec("lookup", `{"event_id":"b"}`, true, 1), // row written: skipped
		rec("malformed", `not json {`, false, 2),
		rec("schema_conflict", `{"event_id":"c"}`, false, 1),
	)
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: errTopic, Value: []byte("garbage")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	dry, err := Replay(t.Context(), cl, seeds, ReplayOptions{ErrorTopic: errTopic, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Read != 5 || dry.Total() != 3 || dry.Skipped["row_written"] != 1 || dry.Skipped["undecodable"] != 1 {
		t.Fatalf("dry run stats %+v", dry)
	}
	if got := readInput(t, seeds, 0); len(got) != 0 {
		t.Fatalf("a dry run produced %d records", len(got))
	}

	st, err := Replay(t.Context(), cl, seeds, ReplayOptions{ErrorTopic: errTopic, Classes: []string{"validation", "malformed"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Total() != 2 || st.Replayed["validation"] != 1 || st.Replayed["malformed"] != 1 || st.Skipped["class"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	got := readInput(t, seeds, 2)
	if len(got) != 2 {
		t.Fatalf("input holds %d records, want 2", len(got))
	}
	want := map[string]string{`{"event_id":"a"}`: "2", `not json {`: "3"}
	for _, r := range got {
		att, ok := want[string(r.Value)]
		if !ok || string(r.Key) != "k-"+string(r.Value) || AttemptOf(r) != atoi(att) {
			t.Fatalf("replayed %q key %q attempt %d", r.Value, r.Key, AttemptOf(r))
		}
		delete(want, string(r.Value))
	}

	// The replay of two classes left the others unconsumed: a replay of
	// every class re-injects the schema_conflict record, and not again the
	// two replayed already.
	again, err := Replay(t.Context(), cl, seeds, ReplayOptions{ErrorTopic: errTopic})
	if err != nil {
		t.Fatal(err)
	}
	if again.Total() != 1 || again.Replayed["schema_conflict"] != 1 {
		t.Fatalf("second replay %+v", again)
	}
	if n := len(readInput(t, seeds, 3)); n != 3 {
		t.Fatalf("input holds %d records after a second replay, want 3", n)
	}
	// The group remembers: a third replay, of a class or of all,
	// re-injects nothing.
	for _, classes := range [][]string{{"validation"}, {"schema_conflict"}, nil} {
		third, err := Replay(t.Context(), cl, seeds, ReplayOptions{ErrorTopic: errTopic, Classes: classes})
		if err != nil {
			t.Fatal(err)
		}
		if third.Total() != 0 {
			t.Fatalf("replay %v after all: %+v", classes, third)
		}
	}
	if n := len(readInput(t, seeds, 3)); n != 3 {
		t.Fatalf("input holds %d records after a third replay, want 3", n)
	}
}

// TestReplayTruncated checks that a record whose original was cut is
// refused, counted and listed, while whole originals of every form (JSON,
// base64, non-UTF-8) replay byte for byte.
func TestReplayTruncated(t *testing.T) {
	cl, seeds := newCluster(t)
	big := []byte(`{"event_id":"big","pad":"` + strings.Repeat("x", 100_000) + `"}`)
	cut := rec("validation", string(big), false, 1)
	cut.Offset = 77
	binary := rec("malformed", "\xff\xfe{", false, 1)
	spaced := rec("validation", `{"event_id": "s", "a": [1, 2]}`, false, 1)
	publish(t, cl, cut, binary, spaced) // the 64 KiB limit cuts big

	st, err := Replay(t.Context(), cl, seeds, ReplayOptions{ErrorTopic: errTopic})
	if err != nil {
		t.Fatal(err)
	}
	if st.Read != 3 || st.Total() != 2 || st.Skipped["truncated"] != 1 || len(st.Truncated) != 1 {
		t.Fatalf("stats %+v", st)
	}
	sum := sha256.Sum256(big)
	tr := st.Truncated[0]
	if tr.Topic != input || tr.Offset != 77 || tr.Length != len(big) || tr.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("truncated %+v", tr)
	}
	if msg := tr.String(); !strings.Contains(msg, "cannot be replayed") || !strings.Contains(msg, tr.SHA256) {
		t.Errorf("message %q", msg)
	}
	want := map[string]bool{"\xff\xfe{": true, `{"event_id": "s", "a": [1, 2]}`: true}
	for _, r := range readInput(t, seeds, 2) {
		if !want[string(r.Value)] {
			t.Fatalf("replayed %q", r.Value)
		}
		delete(want, string(r.Value))
	}
	if len(want) != 0 {
		t.Fatalf("not replayed: %v", want)
	}
}

func TestReplayLimitAndSince(t *testing.T) {
	cl, seeds := newCluster(t)
	old := rec("validation", `{"event_id":"old"}`, false, 1)
	old.FailedAt = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	publish(t, cl, old, rec("validation", `{"event_id":"1"}`, false, 1), rec("validation", `{"event_id":"2"}`, false, 1))
	st, err := Replay(t.Context(), cl, seeds, ReplayOptions{ErrorTopic: errTopic, Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if st.Total() != 1 || st.Skipped["since"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The rest is replayed by the next run, nothing twice.
	st, err = Replay(t.Context(), cl, seeds, ReplayOptions{ErrorTopic: errTopic})
	if err != nil {
		t.Fatal(err)
	}
	if st.Total() != 1 {
		t.Fatalf("second run stats %+v", st)
	}
	if n := len(readInput(t, seeds, 2)); n != 2 {
		t.Fatalf("input holds %d, want 2", n)
	}
}

func TestAttemptOf(t *testing.T) {
	for _, tt := range []struct {
		h    string
		want int
	}{{"", 1}, {"3", 3}, {"x", 1}, {"-2", 1}} {
		r := &kgo.Record{}
		if tt.h != "" {
			r.Headers = []kgo.RecordHeader{{Key: AttemptHeader, Value: []byte(tt.h)}}
		}
		if got := AttemptOf(r); got != tt.want {
			t.Errorf("AttemptOf(%q) = %d, want %d", tt.h, got, tt.want)
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestMarshalFitsTheBroker produces a cut record of a 5 MB original under
// the broker's default message.max.bytes: it goes through with the batch
// limit raised to the topic's limit (as DefaultMaxRecordBytes says), and
// franz-go's default batch limit refuses it before sending.
func TestMarshalFitsTheBroker(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, errTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := rec("validation", `{"pad":"`+strings.Repeat("x", 5<<20)+`"}`, false, 1)
	v, err := r.Marshal(0)
	if err != nil {
		t.Fatal(err)
	}
	out := &kgo.Record{Topic: errTopic, Key: r.RecordKey(), Value: v}
	for _, tt := range []struct {
		name string
		opts []kgo.Opt
		ok   bool
	}{
		{"batch limit raised", []kgo.Opt{kgo.ProducerBatchMaxBytes(1_048_588)}, true},
		{"franz-go's default batch limit", nil, false},
	} {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordRetries(1)}, tt.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		err = cl.ProduceSync(t.Context(), out).FirstErr()
		cl.Close()
		if (err == nil) != tt.ok {
			t.Errorf("%s: produce %d-byte record: %v", tt.name, len(v), err)
		}
	}
}
