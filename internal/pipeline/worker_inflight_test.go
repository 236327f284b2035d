package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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

// inflightRegistry is registryWith(tbl) with the lookup asking for each
// event's assignment, uncached, so that polls wait on the API.
func inflightRegistry(tbl table) *Registry {
	lf := lookupFactory.(*typedFactory[LookupConfig, *LookupConfig])
	r := NewRegistry()
	r.MustRegister(TypeTransform, transformFactory)
	r.MustRegister(TypeValidation, validationFactory)
	r.MustRegister(TypeLookup, TypedFactory(lookupDefaults, func(c *LookupConfig, d Deps) (Handler, error) {
		c.Endpoint = "/customTasks/assignment/{assignment_id}"
		c.PathParams = map[string]string{"assignment_id": "assignment_id"}
		c.CacheTTL = 0
		return lf.build(c, d)
	}))
	r.MustRegister(TypeDeltaWriter, TypedFactory(deltaWriterDefaults, func(cfg *DeltaWriterConfig, deps Deps) (Handler, error) {
		return newDeltaWriter(cfg, tbl, deps), nil
	}))
	return r
}

// A second worker joins the group while the first has many polls in
// flight, each waiting on a slow API call: the revoke completes them before
// its flush, and every event lands once, in each assignment's order.
func TestInflightRevoke(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t, sim.Options{Seed: 3, Projects: 60})
	want := e.entries()
	half := min(len(want)/2, 240)
	if err := e.sim.SetFaults(sim.Faults{LatencyMin: 500 * time.Millisecond, LatencyMax: time.Second}); err != nil {
		t.Fatal(err)
	}
	tbl := newMemTable()
	wcfg := *e.worker
	wcfg.BatchSize = 3
	wcfg.PollsInFlight = 32
	newW := func() *Worker {
		w, err := NewWorker(ctx, &wcfg, e.kopts(), inflightRegistry(tbl), e.deps())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		return w
	}
	a := newW()
	stopA := runWorker(t, ctx, a)
	e.produceTracking(ctx, want[:half])
	// Many polls of 3 records, 32 API calls at a time of 0.5–1 s each: the
	// first half takes seconds, so the rebalance meets polls in flight.
	waitFor(t, 60*time.Second, "worker a's API calls", func() bool { return e.sim.Stats().InFlight > 0 })
	b := newW()
	stopB := runWorker(t, ctx, b)
	adm := kadm.NewClient(e.prod)
	waitFor(t, 60*time.Second, "the group of two", func() bool {
		gs, err := adm.DescribeGroups(ctx, wcfg.ConsumerGroup)
		g, ok := gs[wcfg.ConsumerGroup]
		return err == nil && ok && g.State == "Stable" && len(g.Members) == 2
	})
	if err := e.sim.SetFaults(sim.Faults{LatencyMin: time.Millisecond, LatencyMax: 3 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	e.produceTracking(ctx, want[half:])
	waitFor(t, 120*time.Second, "every row", func() bool { return len(tbl.snapshot()) >= len(want) })
	if err := stopB(); err != nil {
		t.Fatalf("worker b: %v", err)
	}
	if err := stopA(); err != nil {
		t.Fatalf("worker a: %v", err)
	}
	if a.drained.Load() == 0 {
		t.Error("the rebalance completed no poll in flight: the test did not exercise the drain")
	}
	checkTimeline(t, tbl.snapshot(), want)
}
