package enrich

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/config"
	"kpipe/internal/httpconn"
	"kpipe/internal/kafka"
	"kpipe/internal/metrics"
	"kpipe/internal/plugin"
	"kpipe/internal/sim"
)

const trackingTopic = "itel.cabinet.task.tracking"

// testLogger discards logs unless KPIPE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("KPIPE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newCluster starts a one-broker kfake cluster holding config/topics.yaml's
// topics.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ensureTopics(t, c.ListenAddrs())
	return c
}

func ensureTopics(t testing.TB, addrs []string) {
	t.Helper()
	specs, err := kafka.LoadTopics("../../config/topics.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, addrs)
	if _, err := kafka.EnsureTopics(context.Background(), cl, specs, 0); err != nil {
		t.Fatal(err)
	}
}

func newClient(t testing.TB, addrs []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kafka.NewClient(kafka.Config{Brokers: addrs}, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// testEnv is the environment config.Load sees in tests.
func testEnv(baseURL string) func(string) (string, bool) {
	env := map[string]string{"CLAIMX_API_BASE_URL": baseURL, "CLAIMX_API_TOKEN": sim.DefaultToken}
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// startSim serves a simulated ClaimX world.
func startSim(t testing.TB, seed int64, projects int) (*sim.Sim, string) {
	t.Helper()
	s := sim.New(sim.Options{Seed: seed, Projects: projects})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// components loads config/ as kpipe does and builds the orchestrator and the
// ClaimX client of the claimx_api connection.
func components(t testing.TB, baseURL string, m *metrics.Metrics, log *slog.Logger) (*plugin.Orchestrator, *claimx.Client) {
	t.Helper()
	cfg, err := config.Load("../../config", config.WithEnv(testEnv(baseURL)))
	if err != nil {
		t.Fatal(err)
	}
	orch, err := plugin.NewOrchestrator(context.Background(), plugin.DefaultRegistry(), cfg.Plugins, plugin.Deps{Logger: log, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	cx, err := claimx.NewClient(cfg.Connections["claimx_api"], httpconn.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	return orch, cx
}

// publishWorld produces the simulator's events to claimx.events.
func publishWorld(t testing.TB, ctx context.Context, cl *kgo.Client, s *sim.Sim, o sim.GenerateOptions) {
	t.Helper()
	var recs []*kgo.Record
	err := s.Generate(ctx, o, func(_ context.Context, k, v []byte) error {
		recs = append(recs, &kgo.Record{Topic: kafka.TopicEvents, Key: k, Value: v})
		if len(recs) == 500 {
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return err
			}
			recs = recs[:0]
		}
		return nil
	})
	if err == nil && len(recs) > 0 {
		err = cl.ProduceSync(ctx, recs...).FirstErr()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// outRecord is one consumed output record.
type outRecord struct {
	key       string
	partition int32
	offset    int64
	value     []byte
}

// readCommitted reads topic from the start with read_committed until it holds
// want records, then for quiet more to catch extras.
func readCommitted(t testing.TB, addrs []string, topic string, want int, timeout, quiet time.Duration) []outRecord {
	t.Helper()
	cl := newClient(t, addrs, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var out []outRecord
	deadline := time.Now().Add(timeout)
	var quietUntil time.Time
	for {
		now := time.Now()
		if len(out) >= want && quietUntil.IsZero() {
			quietUntil = now.Add(quiet)
		}
		if !quietUntil.IsZero() && now.After(quietUntil) {
			return out
		}
		if now.After(deadline) {
			t.Fatalf("%s: got %d records within %v, want %d", topic, len(out), timeout, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, outRecord{key: string(r.Key), partition: r.Partition, offset: r.Offset, value: r.Value})
		})
	}
}

// checkTracking verifies the tracking topic against the simulator's manifest:
// one record per 32513 event, no other template, SPEC.md's payload field by
// field (with the tracked values as of the event and the row's fetch time
// that kpipe adds), each assignment's events in order.
func checkTracking(t testing.TB, s *sim.Sim, got []outRecord) {
	t.Helper()
	man := s.Manifest()
	want := man.EventsForTemplate(sim.TemplateITelCabinet)
	if man.Count(0) == len(want) {
		t.Fatal("the world has only 32513 tasks; want mixed templates")
	}
	byID := make(map[string]sim.ManifestEntry, len(want))
	for _, e := range want {
		byID[e.EventID] = e
	}
	seen := make(map[string]int, len(got))
	perAssignment := make(map[int64][]string)
	// SPEC.md's fields in its order; kpipe adds the tracked values as of
	// the event after timestamp, and the row's fetch time after task.
	specOrder := []string{"trigger_name", "event_id", "event_type", "project_id", "task_id", "assignment_id", "task_name", "task_status", "timestamp",
		"previous_status", "assigned_to_user_id", "assigned_by_user_id", "task_created_at", "task_completed_at", "task", "task_fetched_at", "project"}
	for _, r := range got {
		keys, err := topLevelKeys(r.value)
		if err != nil {
			t.Fatalf("record %d/%d: %v", r.partition, r.offset, err)
		}
		if strings.Join(keys, ",") != strings.Join(specOrder, ",") {
			t.Fatalf("payload keys %v, want %v", keys, specOrder)
		}
		var p struct {
			TriggerName  string         `json:"trigger_name"`
			EventID      string         `json:"event_id"`
			EventType    string         `json:"event_type"`
			ProjectID    string         `json:"project_id"`
			TaskID       int64          `json:"task_id"`
			AssignmentID int64          `json:"assignment_id"`
			TaskName     string         `json:"task_name"`
			TaskStatus   string         `json:"task_status"`
			Timestamp    string         `json:"timestamp"`
			Previous     *string        `json:"previous_status"`
			AssignedTo   int64          `json:"assigned_to_user_id"`
			AssignedBy   int64          `json:"assigned_by_user_id"`
			CreatedAt    string         `json:"task_created_at"`
			CompletedAt  *string        `json:"task_completed_at"`
			Task         map[string]any `json:"task"`
			FetchedAt    string         `json:"task_fetched_at"`
			Project      map[string]any `json:"project"`
		}
		if err := json.Unmarshal(r.value, &p); err != nil {
			t.Fatal(err)
		}
		seen[p.EventID]++
		e, ok := byID[p.EventID]
		if !ok {
			t.Fatalf("output for event %s, which is not a 32513 task event", p.EventID)
		}
		if p.TriggerName != "iTel Cabinet Task Tracking" || p.EventType != e.EventType || p.ProjectID != e.ProjectID ||
			p.TaskID != 32513 || p.AssignmentID != e.AssignmentID || p.TaskStatus != e.Status ||
			p.Timestamp != e.At.UTC().Format(claimx.TimeFormat) || p.TaskName == "" {
			t.Fatalf("payload %s\ndoes not match manifest entry %+v", r.value, e)
		}
		// The tracked values are the assignment's as of the event, whatever
		// the row fetched later says.
		st, ok := s.AssignmentAt(e.AssignmentID, e.At)
		if !ok || p.AssignedTo != st.AssignedTo || p.AssignedBy != st.AssignedBy || p.CreatedAt != st.CreatedAt.Format(claimx.TimeFormat) ||
			fmtOpt(p.Previous) != st.PreviousStatus || fmtOpt(p.CompletedAt) != fmtTime(st.CompletedAt) || p.FetchedAt == "" {
			t.Fatalf("payload %s\ndoes not match the assignment at its event %+v", r.value, st)
		}
		if r.key != itoa(e.AssignmentID) {
			t.Fatalf("key %q, want assignment id %d", r.key, e.AssignmentID)
		}
		if p.Task["assignment_id"] != float64(e.AssignmentID) || p.Task["task_id"] != float64(32513) {
			t.Fatalf("task row %v is not assignment %d", p.Task, e.AssignmentID)
		}
		if p.Project["project_id"] == nil && p.Project["id"] == nil && len(p.Project) == 0 {
			t.Fatalf("empty project row in %s", r.value)
		}
		perAssignment[e.AssignmentID] = append(perAssignment[e.AssignmentID], p.EventID)
	}
	for _, e := range want {
		if seen[e.EventID] != 1 {
			t.Fatalf("event %s published %d times, want once", e.EventID, seen[e.EventID])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	// got is in partition order per partition, and an assignment's records
	// share a partition (same key).
	for aid, ids := range perAssignment {
		entries := man.Assignments[aid]
		for i, id := range ids {
			if entries[i].EventID != id {
				t.Fatalf("assignment %d: record %d is %s, want %s (order lost)", aid, i, id, entries[i].EventID)
			}
		}
	}
}

func fmtOpt(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(claimx.TimeFormat)
}

// topLevelKeys returns an object's keys in document order.
func topLevelKeys(b []byte) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

func itoa(i int64) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func newMetrics() (*prometheus.Registry, *metrics.Metrics) {
	reg := prometheus.NewRegistry()
	return reg, metrics.New(reg)
}

func counterValue(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }
