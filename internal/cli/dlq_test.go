package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/dlq"
	"kpipe/internal/kafka"
)

func TestDLQReplay(t *testing.T) {
	broker, err := kafka.StartEmbedded(t.Context(), kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	vars := claimxEnv()
	vars["KAFKA_BOOTSTRAP_SERVERS"] = broker.Addrs()[0]
	if code, _, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "topics", "create"); code != ExitOK {
		t.Fatalf("topics create: %s", errOut)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i, written := range []bool{false, true} {
		r := dlq.Record{Worker: "itel_cabinet_tracking_worker", Topic: "itel.cabinet.task.tracking", Handler: "validation",
			Class: "validation", Message: "task_id: want 32513", RowWritten: written, Attempt: 1, FailedAt: time.Now()}
		r.SetOriginal([]byte(`{"event_id":"e` + string(rune('0'+i)) + `"}`))
		b, _ := json.Marshal(r)
		if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "itel.cabinet.task.tracking.errors", Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "dlq", "replay", "--worker", "itel_cabinet_tracking_worker", "--dry-run")
	if code != ExitOK || !strings.Contains(out, "read 2 records, would replay 1") || !strings.Contains(out, "row_written") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, vars, "--config-dir", repoConfig(), "dlq", "replay", "--worker", "itel_cabinet_tracking_worker")
	if code != ExitOK || !strings.Contains(out, "read 2 records, replayed 1") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, vars, "--config-dir", repoConfig(), "dlq", "replay", "--topic", "itel.cabinet.task.tracking.errors")
	if code != ExitOK || !strings.Contains(out, "read 0 records, replayed 0") {
		t.Fatalf("second replay: exit %d\n%s", code, out)
	}
	if code, _, _ := runCLI(t, vars, "--config-dir", repoConfig(), "dlq", "replay"); code != ExitUsage {
		t.Fatalf("replay without a topic: exit %d, want %d", code, ExitUsage)
	}
}
