package pipeline

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/dlq"
	"kpipe/internal/sim"
)

// Rows whose values cannot fit the table go to the error topic as
// schema_conflict, all of them, while the rest of the same flush is written
// once — and numbers in inferred struct fields take both integral and
// decimal values (the regression of a 100,000-event run in which
// linear_feet was 12 in one event and 12.5 in the next).
func TestWorkerSchemaConflicts(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 8, Projects: 60})
	want := e.entries()
	if len(want) < 90 {
		t.Fatalf("world too small: %d", len(want))
	}
	want = want[:90]
	s := deltaSink(t, t.TempDir())
	w := e.newWorker(t, s)
	stop := runWorker(t, ctx, w)

	// The first event alone fixes linear_feet's column type from an
	// integral value.
	payload := func(i int, feet any) []byte {
		var p map[string]any
		_ = json.Unmarshal(trackingPayload(want[i], want[0].At), &p)
		p["task"].(map[string]any)["form_response"] = map[string]any{"answers": map[string]any{"linear_feet": feet}}
		b, _ := json.Marshal(p)
		return b
	}
	e.produce(ctx, &kgo.Record{Key: []byte("k0"), Value: payload(0, 12)})
	waitFor(t, 20*time.Second, "the first row", func() bool { return len(s.rows()) == 1 })

	// Then one flush: decimals and integers that fit, and every third event
	// with a value that cannot (an object where the column is a number).
	var recs []*kgo.Record
	bad := map[string]bool{}
	for i := 1; i < len(want); i++ {
		var feet any = 12.5
		switch {
		case i%3 == 0:
			feet = map[string]any{"value": 3}
			bad[want[i].EventID] = true
		case i%2 == 0:
			feet = 7
		}
		recs = append(recs, &kgo.Record{Key: []byte(want[i].EventID), Value: payload(i, feet)})
	}
	e.produce(ctx, recs...)
	good := len(want) - len(bad)
	waitFor(t, 30*time.Second, "the good rows", func() bool { return len(s.rows()) == good })
	errs := e.readTopic(ctx, errorTopic, len(bad), 20*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(errs) != len(bad) {
		t.Fatalf("got %d error records, want %d", len(errs), len(bad))
	}
	for _, r := range errs {
		var er dlq.Record
		if err := json.Unmarshal(r.Value, &er); err != nil {
			t.Fatal(err)
		}
		var orig struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(er.Original, &orig)
		if er.Class != dlq.ClassSchemaConflict || er.RowWritten || !bad[orig.EventID] {
			t.Fatalf("error record %+v for %s", er, orig.EventID)
		}
	}
	rows := s.rows()
	for _, r := range rows {
		id, _ := r["event_id"].(string)
		if bad[id] {
			t.Fatalf("conflicting row %s was written", id)
		}
		oe, _ := r["original_event"].(map[string]any)
		fr, _ := oe["form_response"].(map[string]any)
		ans, _ := fr["answers"].(map[string]any)
		if f, ok := ans["linear_feet"].(float64); !ok || (f != 12 && f != 12.5 && f != 7) {
			t.Fatalf("row %s linear_feet = %v (%T), want 12, 12.5 or 7 as a double", id, ans["linear_feet"], ans["linear_feet"])
		}
	}
	if got := testutil.ToFloat64(e.metrics.Errors.WithLabelValues(workerName, dlq.ClassSchemaConflict)); got != float64(len(bad)) {
		t.Fatalf("schema_conflict errors metric %v, want %d", got, len(bad))
	}
}
