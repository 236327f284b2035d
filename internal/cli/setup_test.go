package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"kpipe/internal/sim"
)

// TestSetupSummarySteps runs SETUP_SUMMARY.md's setup steps as the README
// translates them to kpipe commands, each a real process: a broker and
// the ClaimX simulator (standing in for the ClaimX API), table create
// --dry-run then create, topics create, the enrichment worker and the
// tracking worker, then one event of an existing iTel assignment produced
// with kpipe produce --example, the plugin's log line, and the row queried
// with kpipe query.
func TestSetupSummarySteps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five processes")
	}
	dir := t.TempDir()
	cfg, err := filepath.Abs(repoConfig())
	if err != nil {
		t.Fatal(err)
	}
	table := filepath.Join(dir, "data", "delta", "itel_cabinet_task_tracking")

	// A Kafka broker of our own: kpipe broker, and the line to export.
	broker := startKpipe(t, nil, "--config-dir", cfg, "broker", "--addr", "127.0.0.1:0")
	bootstrap := broker.waitLine(t, regexp.MustCompile(`(?m)^export KAFKA_BOOTSTRAP_SERVERS=(\S+)$`))[1]
	// The ClaimX API: the simulator (step 1 sets CLAIMX_API_BASE_URL and
	// CLAIMX_API_TOKEN to it).
	const seed, projects = 3, 40
	api := startKpipe(t, nil, "sim", "--addr", "127.0.0.1:0", "--seed", strconv.Itoa(seed), "--projects", strconv.Itoa(projects), "--token", testToken)
	apiURL := api.waitLine(t, regexp.MustCompile(`ClaimX simulator on (http://\S+)`))[1]
	env := []string{"KAFKA_BOOTSTRAP_SERVERS=" + bootstrap, "CLAIMX_API_BASE_URL=" + apiURL, "CLAIMX_API_TOKEN=" + testToken}

	run := func(args ...string) string {
		t.Helper()
		p := startKpipe(t, env, append([]string{"--config-dir", cfg}, args...)...)
		if code := p.exitCode(); code != ExitOK {
			t.Fatalf("kpipe %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, p.out, p.errOut)
		}
		return p.out.String()
	}
	// Step 2: the Delta table, dry run first.
	if out := run("table", "create", "--dry-run", "--location", table); !strings.Contains(out, "year, month, day") {
		t.Fatalf("dry run:\n%s", out)
	}
	if out := run("table", "create", "--location", table); !strings.Contains(out, "created table itel_cabinet_task_tracking") {
		t.Fatalf("create:\n%s", out)
	}
	// Step 3: the topics.
	if out := run("topics", "create"); strings.Count(out, "created") != 5 {
		t.Fatalf("topics create:\n%s", out)
	}
	// Step 4: the two workers, each in its own process.
	enrichP := startKpipe(t, env, "--config-dir", cfg, "enrich")
	worker := startKpipe(t, env, "--config-dir", cfg, "worker", "itel_cabinet_tracking_worker", "--data", filepath.Join(dir, "data"))
	for _, p := range []*proc{enrichP, worker} {
		if _, err := p.errOut.waitFor(t.Context(), regexp.MustCompile(`msg=(enrich_started|worker_started)`), p.done); err != nil {
			t.Fatalf("worker did not start: %v\n%s", err, p.errOut)
		}
	}

	// Testing 4: one event of an existing iTel Cabinet assignment.
	world := sim.New(sim.Options{Seed: seed, Projects: projects})
	ids := world.Manifest().AssignmentIDs(sim.TemplateITelCabinet)
	if len(ids) == 0 {
		t.Fatal("the world has no iTel Cabinet assignment")
	}
	out := run("produce", "--example", strconv.FormatInt(ids[0], 10))
	m := regexp.MustCompile(`"event_id":"([0-9a-f]+)"`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "produced 1 events to claimx.events") {
		t.Fatalf("produce --example:\n%s", out)
	}
	eventID := m[1]

	// Testing 1: the plugin's log line in the enrichment worker's log.
	if _, err := enrichP.errOut.waitFor(t.Context(), regexp.MustCompile(`iTel Cabinet task event tracked \| event_id=`+eventID+` \| task_id=32513`), enrichP.done); err != nil {
		t.Fatalf("no plugin line for %s: %v\n%s", eventID, err, enrichP.errOut)
	}
	// Testing 3: the row in the table.
	sql := "SELECT event_id, task_status, assignment_id FROM itel_cabinet_task_tracking WHERE event_id = '" + eventID + "'"
	var got string
	waitUntil(t, func() bool {
		p := startKpipe(t, env, "--config-dir", cfg, "query", "--table", table, "--format", "csv", sql)
		if p.exitCode() != ExitOK {
			return false
		}
		got = p.out.String()
		return strings.Contains(got, eventID)
	})
	if !strings.Contains(got, strconv.FormatInt(ids[0], 10)) {
		t.Fatalf("the row does not name assignment %d:\n%s", ids[0], got)
	}

	// Ctrl-C: every process stops cleanly.
	for _, p := range []*proc{worker, enrichP, api, broker} {
		p.signal(t, os.Interrupt)
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		select {
		case <-p.done:
		case <-ctx.Done():
		}
		cancel()
		if code := p.exitCode(); code != ExitOK {
			t.Errorf("%v: exit %d after SIGINT\n%s", p.cmd.Args[1:], code, p.errOut)
		}
	}
}
