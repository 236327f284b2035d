package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kpipe/internal/pipeline"
	"kpipe/internal/sim"
)

// TestUpTwiceSameSeed is issue 12's check at a size the default suite
// affords: two kpipe up --events runs in a row with the same seed on one
// data folder. Each run's OK is checked against the table, read back
// independently.
func TestUpTwiceSameSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline twice")
	}
	upTwice(t, 600, 4)
}

// TestUpTwiceIssue12 is issue 12's check as the issue states it: two
// kpipe up --events 3000 --seed 4 --data DIR runs in a row.
func TestUpTwiceIssue12(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline twice")
	}
	upTwice(t, 3000, 4)
}

// upTwice runs kpipe up --events n --seed seed twice on one data folder.
// Whatever each run prints must be true of the table: OK only when it
// holds every tracked event exactly once, and otherwise a failure naming
// the duplicates. The second run writes every event again unless the
// delta_writer drops duplicates, which it does once workers.yaml gives it
// a dedupe block: only then must the second run be OK.
func upTwice(t *testing.T, n int, seed int64) {
	data := t.TempDir()
	want := trackedEvents(seed, n)
	table := filepath.Join(data, "delta", "itel_cabinet_task_tracking")
	run := func() (int, string, string) {
		return runCLI(t, nil, "--config-dir", repoConfig(), "--log-level", "warn",
			"up", "--events", fmt.Sprint(n), "--seed", fmt.Sprint(seed), "--data", data, "--kafka-port", "0", "--metrics-addr", "")
	}

	code, out, errOut := run()
	if code != ExitOK || !strings.Contains(out, "OK: the table holds every tracked event exactly once") {
		t.Fatalf("first run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if dups, missing := checkOnce(t, table, want); dups+missing > 0 {
		t.Fatalf("first run printed OK, but the table has %d tracked events more than once and lacks %d", dups, missing)
	}

	code, out, errOut = run()
	ok := strings.Contains(out, "OK: the table holds every tracked event exactly once")
	dups, missing := checkOnce(t, table, want)
	switch {
	case dups+missing == 0:
		if code != ExitOK || !ok {
			t.Fatalf("second run: the table holds every tracked event once, but exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	case ok || code == ExitOK:
		t.Fatalf("second run printed OK (exit %d), but the table has %d tracked events more than once and lacks %d\nstdout:\n%s\nstderr:\n%s", code, dups, missing, out, errOut)
	default:
		if dups > 0 && !strings.Contains(errOut, fmt.Sprintf("%d duplicated", dups)) {
			t.Fatalf("second run: %d tracked events are in the table more than once, but the failure does not say so\nstdout:\n%s\nstderr:\n%s", dups, out, errOut)
		}
	}
	if strings.Contains(out, "left in Kafka") || strings.Contains(errOut, "left in Kafka") {
		t.Fatalf("second run ended with events left in Kafka\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	if !dedupeConfigured(t) {
		t.Skipf("second run: %d of %d tracked events written twice, and kpipe up said so; that the second run is OK is checked once workers.yaml gives the delta_writer a dedupe block", dups, len(want))
	}
	if dups+missing > 0 {
		t.Fatalf("second run with dedupe configured: %d tracked events more than once, %d missing\nstdout:\n%s\nstderr:\n%s", dups, missing, out, errOut)
	}
}

// trackedEvents returns the ids of the tracked events (task
// sim.TemplateITelCabinet) among the first n events of the world of seed.
func trackedEvents(seed int64, n int) map[string]bool {
	world := sim.New(sim.Options{Seed: seed, Events: max(n, 5000), Token: "x"})
	first := map[string]bool{}
	for i, e := range world.Events() {
		if i < n {
			first[e.EventID] = true
		}
	}
	want := map[string]bool{}
	for _, e := range world.Manifest().EventsForTemplate(sim.TemplateITelCabinet) {
		if first[e.EventID] {
			want[e.EventID] = true
		}
	}
	return want
}

// checkOnce reads the table at path and counts the events of want it
// holds more than once (dups) and not at all (missing).
func checkOnce(t *testing.T, path string, want map[string]bool) (dups, missing int) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("no tracked events to check")
	}
	rows, err := tableRows(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range rows {
		id, _ := r["event_id"].(string)
		seen[id]++
	}
	for id := range want {
		switch {
		case seen[id] == 0:
			missing++
		case seen[id] > 1:
			dups++
		}
	}
	return dups, missing
}

// dedupeConfigured reports whether the repository's tracking worker gives
// its delta_writer a dedupe block.
func dedupeConfigured(t *testing.T) bool {
	t.Helper()
	env := &Env{ConfigDir: repoConfig(), Stdout: os.Stdout, Stderr: os.Stderr, Getenv: func(k string) (string, bool) {
		v, ok := claimxEnv()[k]
		return v, ok
	}}
	cfg, err := loadConfig(env, "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := cfg.Worker("itel_cabinet_tracking_worker")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range w.EnrichmentHandlers {
		if h.Type != pipeline.TypeDeltaWriter {
			continue
		}
		var block map[string]any
		if err := h.Decode(&block); err != nil {
			t.Fatal(err)
		}
		_, ok := block["dedupe"]
		return ok
	}
	t.Fatal("the tracking worker has no delta_writer")
	return false
}
