package pipeline

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/dlq"
	"kpipe/internal/sim"
)

// TestInflightRowsEqualSerial runs the same input through the worker with
// one poll in flight at a time (the serial path: each poll through the
// whole chain before the next) and with many polls in flight over small
// polls and an uncached lookup with API latency, so that polls overlap.
// Every row must be the same (nested structs, nulls, a struct field added
// later, numbers of both kinds), and so must the error records: rejected
// rows (schema_conflict), validation failures and malformed messages.
func TestInflightRowsEqualSerial(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 21, Projects: 80})
	want := e.entries()
	if len(want) < 150 {
		t.Fatalf("world too small: %d", len(want))
	}
	want = want[:150]
	created := e.sim.Manifest()
	var recs []*kgo.Record
	good, bad := 0, 0
	for i, en := range want {
		var p map[string]any
		_ = json.Unmarshal(trackingPayload(en, created.Assignments[en.AssignmentID][0].At), &p)
		key := []byte(fmt.Sprint(en.AssignmentID))
		task := p["task"].(map[string]any)
		switch {
		case i%10 == 3:
			// Schema evolution on one key (one partition, so in offset
			// order): a nested field appears, then a later one beside it;
			// every fourth of them conflicts with the first's type.
			key = []byte("evolve")
			ans := map[string]any{"linear_feet": 12}
			if i > 50 {
				ans["finish"] = "oak"
				ans["linear_feet"] = 12.5
			}
			if i%40 == 23 {
				ans["linear_feet"] = map[string]any{"value": 3} // an object where the column is a number
				bad++
			} else {
				good++
			}
			task["form_response"] = map[string]any{"answers": ans, "note": nil}
		case i%17 == 5:
			p["task_id"] = 999 // validation: task_id equals 32513
			bad++
		case i%29 == 7:
			recs = append(recs, &kgo.Record{Key: key, Value: []byte(`{"event_id": "cut`)})
			bad++
			continue
		default:
			good++
		}
		b, _ := json.Marshal(p)
		recs = append(recs, &kgo.Record{Key: key, Value: b})
	}
	e.produce(ctx, recs...)
	if err := e.sim.SetFaults(sim.Faults{LatencyMin: 2 * time.Millisecond, LatencyMax: 6 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}

	run := func(name string, inflight, before int) ([]map[string]any, map[string]string) {
		dir := t.TempDir()
		s := deltaSink(t, dir)
		s.reg = benchRegistry(func(c *LookupConfig) {
			c.Endpoint = "/customTasks/assignment/{assignment_id}"
			c.PathParams = map[string]string{"assignment_id": "assignment_id"}
			c.CacheTTL = 0
		}, func(c *DeltaWriterConfig) { c.FlushRows = 40 })
		wcfg := *e.worker
		wcfg.ConsumerGroup = "group-" + name
		wcfg.ErrorTopic = errorTopic
		wcfg.BatchSize = 4
		wcfg.PollsInFlight = inflight
		w, err := NewWorker(ctx, &wcfg, e.kopts(), s.reg, s.deps(e.deps()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close(ctx) })
		e.sim.ResetStats()
		stop := runWorker(t, ctx, w)
		waitFor(t, 60*time.Second, name+" rows", func() bool {
			return len(readDelta(t, filepath.Join(dir, "delta", "itel_cabinet_task_tracking"))) >= good
		})
		errs := e.readTopic(ctx, errorTopic, before+bad, 30*time.Second)[before:]
		if err := stop(); err != nil {
			t.Fatalf("%s: Run: %v", name, err)
		}
		// A poll's lookups run together (at most batch_size of them); more
		// at once means several polls were in flight.
		if most := e.sim.Stats().MaxInFlight; inflight == 1 && most > int64(wcfg.BatchSize) {
			t.Errorf("serial: %d API calls at once, want at most %d", most, wcfg.BatchSize)
		} else if inflight > 1 && most <= int64(wcfg.BatchSize) {
			t.Errorf("in flight: at most %d API calls at once: polls did not overlap", most)
		}
		classes := map[string]string{}
		for _, r := range errs {
			var er dlq.Record
			if err := json.Unmarshal(r.Value, &er); err != nil {
				t.Fatal(err)
			}
			classes[fmt.Sprintf("%d/%d", er.Partition, er.Offset)] = er.Class
		}
		return readDelta(t, filepath.Join(dir, "delta", "itel_cabinet_task_tracking")), classes
	}
	serialRows, serialErrs := run("serial", 1, 0)
	inflightRows, inflightErrs := run("inflight", 16, bad)

	if len(serialRows) != good || len(inflightRows) != good {
		t.Fatalf("rows: serial %d, in flight %d, want %d", len(serialRows), len(inflightRows), good)
	}
	if len(serialErrs) != bad {
		t.Fatalf("serial error records %d, want %d: %v", len(serialErrs), bad, serialErrs)
	}
	if !reflect.DeepEqual(serialErrs, inflightErrs) {
		t.Fatalf("error records differ:\nserial    %v\nin flight %v", serialErrs, inflightErrs)
	}
	key := func(rows []map[string]any) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, r := range rows {
			delete(r, "processed_timestamp") // the processing time of each run
			out[r["event_id"].(string)] = r
		}
		return out
	}
	a, b := key(serialRows), key(inflightRows)
	ids := make([]string, 0, len(a))
	for id := range a {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	evolved := 0
	for _, id := range ids {
		if !reflect.DeepEqual(a[id], b[id]) {
			t.Fatalf("row %s differs:\nserial    %v\nin flight %v", id, a[id], b[id])
		}
		if oe, _ := a[id]["original_event"].(map[string]any); oe["form_response"] != nil {
			evolved++
		}
	}
	if evolved == 0 {
		t.Fatal("no row carries the evolved struct field: the test input is wrong")
	}
}
