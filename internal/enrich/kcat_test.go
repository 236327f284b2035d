package enrich

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"kpipe/internal/kafka"
)

// TestKcatInterop: kcat (librdkafka) produces a hand-written event into the
// embedded broker and consumes what the plugin published for it.
func TestKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is not installed; .ci/run installs it")
		}
		t.Skip("kcat not found on PATH: install it (apt-get install kcat) to run the librdkafka interop test")
	}
	ctx := t.Context()
	e, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	addrs := e.Addrs()
	ensureTopics(t, addrs)
	s, url := startSim(t, 5, 20)
	_, m := newMetrics()
	orch, cx := components(t, url, m, testLogger())

	// A real 32513 assignment of the simulated world, hand-written.
	man := s.Manifest()
	entry := man.Assignments[man.AssignmentIDs(32513)[0]][0]
	event := `{"event_id":"kcat-evt-1","event_type":"` + entry.EventType + `","project_id":"` + entry.ProjectID +
		`","ingested_at":"2026-01-10T12:34:56.789Z","task_assignment_id":` + itoa(entry.AssignmentID) +
		`,"media_id":null,"video_collaboration_id":null,"master_file_name":null,"raw_data":{"status":"` + entry.Status + `","customTaskId":32513}}`
	produce := exec.CommandContext(ctx, kcat, "-b", strings.Join(addrs, ","), "-P", "-t", kafka.TopicEvents, "-k", entry.ProjectID)
	produce.Stdin = strings.NewReader(event + "\n")
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}

	startWorker(t, Options{Kafka: kafka.Config{Brokers: addrs}, Fetcher: cx, Orchestrator: orch, Metrics: m, TransactionalID: "kcat"})
	consume := exec.CommandContext(ctx, kcat, "-b", strings.Join(addrs, ","), "-C", "-t", trackingTopic,
		"-o", "beginning", "-c", "1", "-e", "-X", "isolation.level=read_committed", "-f", "%k\t%s\n")
	var out []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		consume = exec.CommandContext(ctx, consume.Path, consume.Args[1:]...)
		out, err = consume.Output()
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kcat -C read nothing within 30s (err %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	key, value, ok := strings.Cut(strings.TrimSpace(string(out)), "\t")
	if !ok || key != itoa(entry.AssignmentID) {
		t.Fatalf("kcat read %q, want key %d", out, entry.AssignmentID)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(value), &p); err != nil {
		t.Fatalf("payload %q: %v", value, err)
	}
	if p["event_id"] != "kcat-evt-1" || p["task_id"] != float64(32513) || p["task_status"] != entry.Status || p["timestamp"] != "2026-01-10T12:34:56.789Z" {
		t.Fatalf("payload %s", value)
	}
}
