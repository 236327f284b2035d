package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/dlq"
	"kpipe/internal/kafka"
)

// TestDLQListShow: list and show filter by class, time and offset, and
// consume nothing: a replay afterwards still finds every record.
func TestDLQListShow(t *testing.T) {
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
	old := time.Now().Add(-48 * time.Hour)
	for i, c := range []struct {
		class string
		at    time.Time
	}{{"validation", old}, {"schema_conflict", time.Now()}, {"validation", time.Now()}} {
		r := dlq.Record{Worker: "itel_cabinet_tracking_worker", Topic: "itel.cabinet.task.tracking", Partition: 2, Offset: int64(10 + i),
			Handler: "h", Class: c.class, Message: "bad " + c.class, Attempt: 1, FailedAt: c.at}
		r.SetOriginal([]byte(`{"event_id":"e` + string(rune('0'+i)) + `"}`))
		b, _ := json.Marshal(r)
		rec := &kgo.Record{Topic: "itel.cabinet.task.tracking.errors", Partition: 0, Value: b}
		if err := cl.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	list := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, vars, append([]string{"--config-dir", repoConfig(), "--log-level", "error", "dlq", "list", "--worker", "itel_cabinet_tracking_worker"}, args...)...)
		if code != ExitOK {
			t.Fatalf("dlq list %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	for _, tt := range []struct {
		args []string
		want int
	}{
		{nil, 3},
		{[]string{"--class", "validation"}, 2},
		{[]string{"--since", "1h"}, 2},
		{[]string{"--until", "1h"}, 1},
		{[]string{"--class", "validation", "--since", "1h"}, 1},
		{[]string{"--limit", "1"}, 1},
	} {
		out := list(tt.args...)
		if !strings.Contains(out, fmt.Sprintf("itel.cabinet.task.tracking.errors: %d records", tt.want)) {
			t.Errorf("dlq list %v: want %d records:\n%s", tt.args, tt.want, out)
		}
	}
	if out := list("--class", "schema_conflict"); !strings.Contains(out, "itel.cabinet.task.tracking/2/11") || !strings.Contains(out, "bad schema_conflict") {
		t.Errorf("list lacks the source and message:\n%s", out)
	}
	if code, _, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "dlq", "list", "--class", "nonsense"); code != ExitUsage || !strings.Contains(errOut, "want one of") {
		t.Errorf("unknown class: exit %d %s", code, errOut)
	}
	// Without --worker or --topic: every error topic.
	code, out, _ := runCLI(t, vars, "--config-dir", repoConfig(), "--log-level", "error", "dlq", "list")
	if code != ExitOK || !strings.Contains(out, "claimx.enrichment.errors: 0 records") || !strings.Contains(out, "tracking.errors: 3 records") {
		t.Errorf("dlq list of all topics: exit %d\n%s", code, out)
	}

	// Find the offset of the schema_conflict record, and show it alone.
	var offset string
	for _, l := range strings.Split(list("--class", "schema_conflict"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "0/") {
			offset = strings.TrimPrefix(f[0], "0/")
		}
	}
	code, out, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "--log-level", "error", "dlq", "show",
		"--worker", "itel_cabinet_tracking_worker", "--partition", "0", "--offset", offset, "--limit", "1")
	if code != ExitOK {
		t.Fatalf("dlq show: exit %d\n%s%s", code, out, errOut)
	}
	var shown struct {
		Offset int64      `json:"error_offset"`
		Record dlq.Record `json:"record"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("dlq show: %v\n%s", err, out)
	}
	var orig bytes.Buffer
	_ = json.Compact(&orig, shown.Record.Original)
	if shown.Record.Class != "schema_conflict" || orig.String() != `{"event_id":"e1"}` {
		t.Errorf("dlq show: %+v", shown)
	}

	// Nothing was consumed: a replay of validation finds both of them, and
	// leaves schema_conflict for the next one.
	code, out, _ = runCLI(t, vars, "--config-dir", repoConfig(), "dlq", "replay", "--worker", "itel_cabinet_tracking_worker", "--class", "validation")
	if code != ExitOK || !strings.Contains(out, "replayed 2") {
		t.Fatalf("replay --class validation: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, vars, "--config-dir", repoConfig(), "dlq", "replay", "--worker", "itel_cabinet_tracking_worker")
	if code != ExitOK || !strings.Contains(out, "replayed 1") || !strings.Contains(out, "schema_conflict") {
		t.Fatalf("replay of the rest: exit %d\n%s", code, out)
	}
}
