package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kpipe/internal/sim"
)

// TestUpEvents runs the README's local pipeline the way the issue states it
// (kpipe up --events 5000 --seed 1 --data DIR) and checks the table it
// leaves against the simulator's ground truth, read back independently.
func TestUpEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	data := t.TempDir()
	code, out, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "--log-level", "warn",
		"up", "--events", "5000", "--seed", "1", "--data", data, "--kafka-port", "0", "--metrics-addr", "127.0.0.1:0")
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"OK: the table holds every tracked event exactly once", "kpipe query --table", "/metrics"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The expected rows: the 32513 events among the first 5000 of seed 1.
	world := sim.New(sim.Options{Seed: 1, Events: 5000, Token: "x"})
	first := map[string]bool{}
	for i, e := range world.Events() {
		if i < 5000 {
			first[e.EventID] = true
		}
	}
	want := map[string]sim.ManifestEntry{}
	for _, e := range world.Manifest().EventsForTemplate(32513) {
		if first[e.EventID] {
			want[e.EventID] = e
		}
	}
	if len(want) == 0 {
		t.Fatal("the world has no 32513 events")
	}

	rows, err := tableRows(t.Context(), filepath.Join(data, "delta", "itel_cabinet_task_tracking"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) {
		t.Fatalf("table has %d rows, want %d", len(rows), len(want))
	}
	seen := map[string]bool{}
	for _, r := range rows {
		id, _ := r["event_id"].(string)
		e, ok := want[id]
		if !ok || seen[id] {
			t.Fatalf("row %s: unexpected or duplicated", id)
		}
		seen[id] = true
		if r["task_status"] != e.Status || r["event_type"] != e.EventType || r["task_id"] != int32(32513) {
			t.Fatalf("row %s = status %v type %v task %v (%T), want %s %s 32513", id, r["task_status"], r["event_type"], r["task_id"], r["task_id"], e.Status, e.EventType)
		}
		if r["claimx_task_full"] == nil || r["project_data"] == nil || r["original_event"] == nil {
			t.Fatalf("row %s lacks enrichment: %v", id, r)
		}
	}
}

// TestUpStopsCleanly runs kpipe up with the generator until the table has
// rows, stops it as Ctrl-C does, and checks it exits 0 with every row it
// reports written in a readable table. It waits on what the pipeline does,
// never on the clock, and takes free ports only.
func TestUpStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	data := t.TempDir()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	env := &Env{Stdout: out, Stderr: errOut, Getenv: func(string) (string, bool) { return "", false }}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, env, []string{"--config-dir", repoConfig(), "--log-level", "warn",
			"up", "--rate", "500", "--data", data, "--kafka-port", "0", "--metrics-addr", "127.0.0.1:0"})
	}()
	m, err := out.waitFor(t.Context(), regexp.MustCompile(`metrics  http://(\S+)/metrics`), nil)
	if err != nil {
		t.Fatalf("no metrics address: %v\n%s\n%s", err, out, errOut)
	}
	written := regexp.MustCompile(`(?m)^itel_worker_delta_writes_total\{[^}]*\} ([1-9]\d*)$`)
	waitUntil(t, func() bool { return written.MatchString(scrape(m[1])) })
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out.String(), "stopping: flushing the table") {
		t.Fatalf("output:\n%s", out)
	}
	// The last progress line: what the workers counted. A stop can land
	// between the workers, so triggered events may still wait in Kafka
	// (written <= triggered), but every row counted written is in the
	// table.
	// The summary comes after it, naming the table and how to query it.
	var generated, enriched, triggered, nWritten, lag, errs int
	ls := lines(out.String())
	last := ""
	for _, l := range ls {
		if strings.HasPrefix(l, "generated ") {
			last = l
		}
	}
	if _, err := fmt.Sscanf(last, "generated %d  enriched %d  triggered %d  written %d  lag %d  errors %d",
		&generated, &enriched, &triggered, &nWritten, &lag, &errs); err != nil {
		t.Fatalf("last progress line %q: %v\n%s", last, err, out)
	}
	for _, want := range []string{"kpipe up stopped:", "kpipe query --table " + filepath.Join(data, "delta", "itel_cabinet_task_tracking"), "kpipe report --table "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the summary lacks %q:\n%s", want, out)
		}
	}
	if nWritten == 0 || nWritten > triggered {
		t.Fatalf("triggered %d, written %d, errors %d: want 0 < written <= triggered\n%s\nstderr:\n%s", triggered, nWritten, errs, out, errOut)
	}
	rows, err := tableRows(t.Context(), filepath.Join(data, "delta", "itel_cabinet_task_tracking"))
	if err != nil {
		t.Fatalf("no readable table after a clean stop: %v", err)
	}
	if len(rows) != nWritten {
		t.Fatalf("the table holds %d rows, the worker counted %d written", len(rows), nWritten)
	}
}

func TestUpRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"up", "--events", "10", "--no-generator"},
		{"up", "--faults", "bogus=1"},
		{"up", "--events", "-1"},
	} {
		code, _, errOut := runCLI(t, nil, append([]string{"--config-dir", repoConfig()}, args...)...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, errOut)
		}
	}
}

// waitUntil polls cond until it holds; only the test's own deadline bounds
// it, so a loaded machine makes the test slower, never failing.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatal("gave up waiting: the test's context ended")
		case <-tick.C:
		}
	}
}

// A second kpipe up over the same data folder checks only the rows it adds
// (it stopped at once before: the table already held more rows than the
// run expected, and it reported every new event missing); with the
// broker's data gone the tracking worker stops its partitions rather than
// skip new records, and --reset-offsets earliest writes them.
func TestUpAgainOnSameData(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	data := t.TempDir()
	run := func(seed string, extra ...string) (int, string, string) {
		args := append([]string{"--config-dir", repoConfig(), "--log-level", "warn",
			"up", "--events", "1500", "--seed", seed, "--data", data, "--kafka-port", "0", "--metrics-addr", ""}, extra...)
		return runCLI(t, nil, args...)
	}
	if code, out, errOut := run("1"); code != ExitOK {
		t.Fatalf("first run: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut := run("2")
	if code != ExitOK || !strings.Contains(out, "already holds") {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := os.RemoveAll(filepath.Join(data, "kafka")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run("3", "--reset-offsets", "earliest")
	if code != ExitOK {
		t.Fatalf("run after the broker's data was removed, with --reset-offsets earliest: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "partition_offsets_reset") {
		t.Fatalf("no reset logged:\n%s", errOut)
	}
}
