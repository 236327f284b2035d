package plugin_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"kpipe/internal/config"
	"kpipe/internal/delta"
	"kpipe/internal/kafka"
	"kpipe/internal/pipeline"
	"kpipe/internal/plugin"
	"kpipe/internal/sim"
	"kpipe/internal/stack"
)

const repoConfig = "../../config"

// sometimesNull are the columns of the table definition that are null in
// some rows by rule: task_completed_at while the task is not completed as
// of the event, claimx_task_full when the template lookup failed
// (on_error: log_and_continue).
var sometimesNull = map[string]bool{"task_completed_at": true, "claimx_task_full": true}

// TestRowsDescribeTheirEvent runs the whole pipeline (the simulator over
// HTTP, kfake, the enrichment worker with the task_trigger plugin, the
// tracking worker with the repository's workers.yaml, a Delta table on
// disk) and checks every row against the simulator's state of its
// assignment at the row's event time: status, assignee, assigner, created
// and completed; and that no column of the table definition is null in
// every row.
func TestRowsDescribeTheirEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const seed, events = 1, 2500
	var out syncBuffer
	s, err := stack.New(t.Context(), stack.Options{
		LoadConfig: func(getenv func(string) (string, bool)) (*config.Config, error) {
			return config.Load(repoConfig, config.WithEnv(getenv), config.WithHandlers(pipeline.DefaultRegistry()), config.WithPlugins(plugin.DefaultRegistry()))
		},
		ConfigDir:   repoConfig,
		DataDir:     t.TempDir(),
		Worker:      "itel_cabinet_tracking_worker",
		Kafka:       &kafka.Config{Brokers: c.ListenAddrs(), ClientID: "eventtime-test"},
		IDPrefix:    "eventtime-test-",
		Seed:        seed,
		Events:      events,
		WaitTimeout: time.Minute,
		Out:         &out,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.WithoutCancel(t.Context()))
	if err := s.Run(t.Context()); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	rows, err := stack.TableRows(t.Context(), s.Info().Table)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 50 {
		t.Fatalf("%d rows, want many", len(rows))
	}

	// The stack's world: the same seed and size (stack.New sizes it to at
	// least 5000 events).
	world := sim.New(sim.Options{Seed: seed, Events: max(events, 5000)})
	byEvent := map[string]sim.ManifestEntry{}
	for _, es := range world.Manifest().Assignments {
		for _, e := range es {
			byEvent[e.EventID] = e
		}
	}
	later := 0 // rows whose fetched task row had moved past the event
	for _, r := range rows {
		id, _ := r["event_id"].(string)
		e, ok := byEvent[id]
		if !ok {
			t.Fatalf("row of event %q, which is not a task event of the world", id)
		}
		at, _ := r["event_timestamp"].(time.Time)
		if !at.Equal(e.At) || toInt(r["assignment_id"]) != e.AssignmentID {
			t.Fatalf("row %s: event_timestamp %v assignment %v, want %s %d", id, r["event_timestamp"], r["assignment_id"], e.At, e.AssignmentID)
		}
		st, ok := world.AssignmentAt(e.AssignmentID, at)
		if !ok {
			t.Fatalf("row %s: assignment %d has no state at %s", id, e.AssignmentID, at)
		}
		got := []any{r["task_status"], toInt(r["assigned_to_user_id"]), toInt(r["assigned_by_user_id"]), toTime(r["task_created_at"]), toTime(r["task_completed_at"])}
		want := []any{st.Status, st.AssignedTo, st.AssignedBy, st.CreatedAt, st.CompletedAt}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("row %s (%s at %s):\n got status, to, by, created, completed %v\nwant %v (the assignment at the event)", id, e.EventType, at, got, want)
		}
		oe, _ := r["original_event"].(map[string]any)
		if oe["kpipe_fetched_at"] == nil || toInt(oe["assignment_id"]) != e.AssignmentID {
			t.Fatalf("row %s: original_event %v, want the fetched row of assignment %d with kpipe_fetched_at", id, oe, e.AssignmentID)
		}
		if oe["status"] != st.Status || toInt(oe["assigned_to_user_id"]) != st.AssignedTo {
			later++
		}
	}
	// The pipeline enriches after the simulator's clock has moved on, so
	// many fetched rows show a later state: the case this test is about.
	if later == 0 {
		t.Errorf("no row's fetched task row differs from its event: the test does not exercise a later fetch")
	}
	t.Logf("%d rows; %d fetched task rows showed a later state than their event", len(rows), later)

	def, err := delta.LoadTableDef(repoConfig + "/tables/itel_cabinet_task_tracking.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var allNull, someNull []string
	for _, f := range def.Schema.Fields {
		n := 0
		for _, r := range rows {
			if r[f.Name] == nil {
				n++
			}
		}
		switch {
		case n == len(rows):
			allNull = append(allNull, f.Name)
		case n > 0 && !sometimesNull[f.Name]:
			someNull = append(someNull, fmt.Sprintf("%s (%d of %d)", f.Name, n, len(rows)))
		}
	}
	sort.Strings(allNull)
	if len(allNull) > 0 {
		t.Errorf("columns null in every row: %v", allNull)
	}
	if len(someNull) > 0 {
		t.Errorf("columns null in some rows, not by rule: %v", someNull)
	}
	for _, r := range rows {
		if r["tracking_version"] != "1.0" || r["source"] != "claimx_itel_plugin" {
			t.Fatalf("row %v: tracking_version %v source %v", r["event_id"], r["tracking_version"], r["source"])
		}
	}
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int32:
		return int64(n)
	case int:
		return int64(n)
	case float64:
		return int64(n)
	}
	return -1
}

func toTime(v any) time.Time {
	t, _ := v.(time.Time)
	return t.UTC()
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
