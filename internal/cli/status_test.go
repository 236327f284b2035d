package cli

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"kpipe/internal/kafka"
)

// TestStatusAndProduce: kpipe produce refuses a bad event and produces a
// good one; kpipe status then shows the groups, the error topics, the
// table and each worker's readiness, and exits 1 when one is not ready.
func TestStatusAndProduce(t *testing.T) {
	broker, err := kafka.StartEmbedded(t.Context(), kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	vars := map[string]string{"KAFKA_BOOTSTRAP_SERVERS": broker.Addrs()[0]}
	if code, _, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "--log-level", "error", "topics", "create"); code != ExitOK {
		t.Fatalf("topics create: %s", errOut)
	}
	table := filepath.Join(t.TempDir(), "tbl")
	if code, _, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "table", "create", "--location", table); code != ExitOK {
		t.Fatalf("table create: %s", errOut)
	}

	code, out, errOut := runCLI(t, vars, "--config-dir", repoConfig(), "--log-level", "error", "produce", `{"event_type":"PROJECT_CREATED"}`)
	if code != ExitUsage || !strings.Contains(errOut, "nothing produced") || strings.Contains(out, "produced") {
		t.Fatalf("produce of an event without event_id: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, vars, "--config-dir", repoConfig(), "--log-level", "error", "produce",
		`{"event_id":"e1","event_type":"PROJECT_CREATED","project_id":"5000001","ingested_at":"2026-01-10T00:00:00Z"}`)
	if code != ExitOK || !strings.Contains(out, "produced 1 events to claimx.events") {
		t.Fatalf("produce: exit %d\n%s%s", code, out, errOut)
	}

	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer ready.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "kafka unreachable", http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	args := []string{"--config-dir", repoConfig(), "--log-level", "error", "status", "--table", table, "--metrics", ready.Listener.Addr().String()}
	code, out, errOut = runCLI(t, vars, args...)
	if code != ExitOK {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"claimx_enrichment_worker_group", "itel_cabinet_tracking_worker_group", "itel.cabinet.task.tracking.errors: 0",
		"version 0, 0 files", "last commit", "ready: ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, vars, append(args, "--metrics", notReady.Listener.Addr().String())...)
	if code != ExitFailure || !strings.Contains(out, "NOT READY (503): kafka unreachable") {
		t.Fatalf("status with a worker not ready: exit %d\n%s", code, out)
	}
}
