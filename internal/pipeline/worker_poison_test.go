package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/delta"
	"kpipe/internal/dlq"
	"kpipe/internal/sim"
)

// Poison messages of every class, interleaved with good ones in the same
// polls and flushes, each end as an error record with its class and the
// original kept once; every good message is a row; the worker never stops.
// Before, a message nested deeper than ~255 levels panicked in the Parquet
// writer, and two new-field types in one flush ended the worker.
func TestWorkerPoisonMessages(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 9, Projects: 40})
	want := e.entries()
	if len(want) < 40 {
		t.Fatalf("world too small: %d", len(want))
	}
	want = want[:40]
	cfg := *e.worker
	cfg.MaxMessageBytes = 64 << 10
	e.worker = &cfg
	s := deltaSink(t, t.TempDir())
	w := e.newWorker(t, s)
	stop := runWorker(t, ctx, w)

	payload := func(i int, change func(task map[string]any)) []byte {
		var p map[string]any
		_ = json.Unmarshal(trackingPayload(want[i], want[0].At), &p)
		if change != nil {
			change(p["task"].(map[string]any))
		}
		b, _ := json.Marshal(p)
		return b
	}
	// The first event alone creates the table.
	e.produce(ctx, &kgo.Record{Key: []byte("k0"), Value: payload(0, nil)})
	waitFor(t, 20*time.Second, "the first row", func() bool { return len(s.rows()) == 1 })

	deep := strings.Repeat(`[`, 300) + strings.Repeat(`]`, 300)
	huge := payload(2, func(task map[string]any) { task["notes"] = strings.Repeat("x", 100<<10) })
	poison := map[string][]byte{
		"not json":     []byte(`{"event_id": "trunc`),
		"not utf-8":    []byte("{\"event_id\": \"bad \xff\xfe bytes\", \"task_id\": 32513}"),
		"too deep":     []byte(`{"event_id": "deep", "task": {"x": ` + deep + `}}`),
		"too large":    huge,
		"conflict obj": payload(4, func(task map[string]any) { task["new_field"] = map[string]any{"a": int64(1)} }),
		"conflict str": payload(6, func(task map[string]any) { task["new_field"] = "a string" }),
	}
	wantClass := map[string]string{
		"not json": dlq.ClassMalformed, "not utf-8": dlq.ClassMalformed, "too deep": dlq.ClassTooDeep,
		"too large": dlq.ClassTooLarge,
	}
	// One poll, one flush: good events with a poison one after every good
	// one until they run out. Of the two new_field types, the first row of
	// the flush gives the field its type and the other conflicts (the
	// partitions' rows are buffered in whichever order their goroutines
	// finish).
	order := []string{"not json", "not utf-8", "too deep", "too large", "conflict obj", "conflict str"}
	var recs []*kgo.Record
	goodRows := 1
	for i := 1; i < len(want); i++ {
		if i == 2 || i == 4 || i == 6 {
			continue // their payloads are the poison ones
		}
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: payload(i, nil)})
		goodRows++
		if len(order) > 0 {
			name := order[0]
			order = order[1:]
			recs = append(recs, &kgo.Record{Key: []byte(name), Value: poison[name]})
		}
	}
	goodRows++ // one of the conflicting rows is written
	e.produce(ctx, recs...)
	waitFor(t, 30*time.Second, "the good rows", func() bool { return len(s.rows()) == goodRows })
	errs := e.readTopic(ctx, errorTopic, len(wantClass)+1, 20*time.Second)
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("worker not ready after poison messages: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(errs) != len(wantClass)+1 {
		t.Fatalf("got %d error records, want %d", len(errs), len(wantClass)+1)
	}
	byKey := map[string]dlq.Record{}
	for _, r := range errs {
		var er dlq.Record
		if err := json.Unmarshal(r.Value, &er); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != string(er.RecordKey()) {
			t.Fatalf("error record key %q, want the source's %q", r.Key, er.RecordKey())
		}
		if len(r.Value) > dlq.DefaultMaxRecordBytes {
			t.Fatalf("error record of %d bytes", len(r.Value))
		}
		byKey[er.Key] = er
	}
	lost := "conflict str"
	if _, ok := byKey["conflict obj"]; ok {
		lost = "conflict obj"
	}
	wantClass[lost] = dlq.ClassSchemaConflict
	for name, class := range wantClass {
		er, ok := byKey[name]
		if !ok {
			t.Fatalf("no error record for %s", name)
		}
		if er.Class != class {
			t.Fatalf("%s: class %s (%s), want %s", name, er.Class, er.Message, class)
		}
		orig, whole := er.OriginalBytes()
		if !whole || string(orig) != string(poison[name]) {
			t.Fatalf("%s: original not kept byte for byte (%d bytes, whole %v)", name, len(orig), whole)
		}
	}
	lostID, keptID := want[6].EventID, want[4].EventID
	if lost == "conflict obj" {
		lostID, keptID = keptID, lostID
	}
	kept := false
	for _, row := range s.rows() {
		switch row["event_id"] {
		case lostID:
			t.Fatal("the conflicting row was written")
		case keptID:
			kept = true
		}
	}
	if !kept {
		t.Fatal("the row that typed new_field is missing")
	}
}

// The error records of rows the table refuses and the success records of
// the rows it takes are in Kafka before the commit that moves the stored
// offsets past them: a crash between the two loses neither (they are
// published again, with the same key, when the restarted worker commits).
func TestWorkerRecordsDurableBeforeCommit(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 3, Projects: 30})
	want := e.entries()[:30]
	bad := want[7].EventID
	tbl := newMemTable()
	tbl.reject = func(row map[string]any) bool { return row["event_id"] == bad }
	var sawBefore bool
	killed := false
	tbl.beforeCommit = func() error {
		if killed {
			return nil
		}
		// At the commit point: the records must already be in Kafka.
		errs := e.readTopic(ctx, errorTopic, 1, 5*time.Second)
		succ := e.readTopic(ctx, successTopic, 1, 5*time.Second)
		sawBefore = len(errs) >= 1 && len(succ) >= 1
		killed = true
		return ErrKilled
	}
	w := newTestWorker(t, e, tbl)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	e.produceTracking(ctx, want)
	if err := <-done; !errors.Is(err, ErrKilled) {
		t.Fatalf("first run: %v, want the kill", err)
	}
	if !sawBefore {
		t.Fatal("error and success records were not in Kafka before the commit")
	}
	if n := len(tbl.snapshot()); n != 0 {
		t.Fatalf("%d rows committed by the killed run", n)
	}
	w = newTestWorker(t, e, tbl)
	stop := runWorker(t, ctx, w)
	waitFor(t, 30*time.Second, "the rows", func() bool { return len(tbl.snapshot()) == len(want)-1 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	errs := e.readTopic(ctx, errorTopic, 2, 10*time.Second)
	keys := map[string]int{}
	for _, r := range errs {
		var er dlq.Record
		if err := json.Unmarshal(r.Value, &er); err != nil {
			t.Fatal(err)
		}
		var orig struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(er.Original, &orig)
		if orig.EventID != bad || er.Class != dlq.ClassSchemaConflict {
			t.Fatalf("error record for %s class %s, want %s schema_conflict", orig.EventID, er.Class, bad)
		}
		keys[string(r.Key)]++
	}
	if len(keys) != 1 || len(errs) < 1 {
		t.Fatalf("error records %d under keys %v: want at least one, all with the source's key", len(errs), keys)
	}
	succ := e.readTopic(ctx, successTopic, -1, time.Second)
	distinct := map[string]bool{}
	for _, r := range succ {
		distinct[string(r.Key)] = true
	}
	if len(distinct) != len(want)-1 {
		t.Fatalf("success records under %d keys, want %d (one per written row)", len(distinct), len(want)-1)
	}
}

// Values are strict by default: a number or boolean given to a string
// column is a schema_conflict with the original kept, not a string made up
// from it; a cast in the mapping (casts: {event_type: to_string}) stores
// its JSON text.
func TestWorkerStrictValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		casts map[string]string
	}{{"strict", nil}, {"cast", map[string]string{"event_type": "to_string"}}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			e := newEnv(t, sim.Options{Seed: 3, Projects: 30})
			want := e.entries()[:5]
			s := deltaSinkTweaked(t, t.TempDir(), func(c *DeltaWriterConfig) { c.Casts = tc.casts })
			w := e.newWorker(t, s)
			stop := runWorker(t, ctx, w)
			var p map[string]any
			_ = json.Unmarshal(trackingPayload(want[4], want[0].At), &p)
			p["event_type"] = true
			odd, _ := json.Marshal(p)
			e.produceTracking(ctx, want[:4])
			e.produce(ctx, &kgo.Record{Key: []byte("odd"), Value: odd})
			if tc.casts == nil {
				errs := e.readTopic(ctx, errorTopic, 1, 20*time.Second)
				waitFor(t, 20*time.Second, "the good rows", func() bool { return len(s.rows()) == 4 })
				if len(errs) != 1 {
					t.Fatalf("%d error records, want 1", len(errs))
				}
				var er dlq.Record
				_ = json.Unmarshal(errs[0].Value, &er)
				if er.Class != dlq.ClassSchemaConflict || !strings.Contains(er.Message, "event_type") || string(er.Original) != string(odd) {
					t.Fatalf("error record %+v", er)
				}
			} else {
				waitFor(t, 20*time.Second, "every row", func() bool { return len(s.rows()) == 5 })
				found := false
				for _, r := range s.rows() {
					if r["event_id"] == want[4].EventID {
						found = r["event_type"] == "true"
					}
				}
				if !found {
					t.Fatal("the cast row is missing or its event_type is not \"true\"")
				}
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

// A table kpipe must not write (here: txn identifiers that expire, which
// would break exactly-once) stops the worker with an error naming the
// cause, instead of retrying it forever as if storage were down.
func TestWorkerStopsOnTableItMustNotWrite(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 3, Projects: 30})
	dir := t.TempDir()
	tbl, _ := createTable(t, dir, func(def *delta.TableDef) {
		def.Properties["delta.setTransactionRetentionDuration"] = "interval 1 days"
	})
	_ = tbl.Close(ctx)
	w := e.newWorker(t, deltaSink(t, dir))
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	e.produceTracking(ctx, e.entries()[:3])
	err := <-done
	if !errors.Is(err, ErrFatal) || !errors.Is(err, delta.ErrTxnRetention) {
		t.Fatalf("Run: %v, want a fatal error naming the txn retention", err)
	}
	if err := w.Ready(ctx); err == nil {
		t.Fatal("ready after a fatal error")
	}
}

// A message over 1 MB (the input topic allows it, the error topic does
// not) gets an error record that fits what the producer sends in one
// batch: the original cut, with its length and SHA-256. Before, the record
// was sized to the topic's limit, the client refused it, and the worker
// crash-looped behind the message.
func TestWorkerHugeMessageErrorRecordFits(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 3, Projects: 30})
	want := e.entries()[:3]
	adm := kadm.NewClient(e.prod)
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr("4194304")}}, inputTopic); err != nil {
		t.Fatal(err)
	}
	big, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.DefaultProduceTopic(inputTopic), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	huge := []byte(`{"event_id": "huge", "notes": "` + strings.Repeat("x", 1500<<10) + `"}`)
	if err := big.ProduceSync(ctx, &kgo.Record{Key: []byte("huge"), Value: huge}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tbl := newMemTable()
	w := newTestWorker(t, e, tbl)
	stop := runWorker(t, ctx, w)
	e.produceTracking(ctx, want)
	waitFor(t, 30*time.Second, "the rows after the huge message", func() bool { return len(tbl.snapshot()) == len(want) })
	errs := e.readTopic(ctx, errorTopic, 1, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(errs) != 1 {
		t.Fatalf("%d error records, want 1", len(errs))
	}
	var er dlq.Record
	if err := json.Unmarshal(errs[0].Value, &er); err != nil {
		t.Fatal(err)
	}
	if er.Class != dlq.ClassTooLarge || !er.OriginalTruncated || er.OriginalLength != len(huge) || er.OriginalSHA256 == "" {
		t.Fatalf("error record class %s truncated %v length %d sha %q", er.Class, er.OriginalTruncated, er.OriginalLength, er.OriginalSHA256)
	}
	if n := len(errs[0].Value); n > producerBatchMaxBytes-recordOverhead {
		t.Fatalf("error record of %d bytes", n)
	}
}
