package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kpipe/internal/delta"
)

func runTable(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) (string, bool) { return "", false }}
	code := run(t.Context(), env, append([]string{"--config-dir", "../../config"}, args...))
	return out.String(), errb.String(), code
}

func TestTableCreateDescribeHistory(t *testing.T) {
	loc := filepath.Join(t.TempDir(), "tbl")

	out, errs, code := runTable(t, "table", "create", "--location", loc, "--dry-run")
	if code != ExitOK {
		t.Fatalf("dry run: exit %d: %s", code, errs)
	}
	for _, want := range []string{"itel_cabinet_task_tracking", "minWriterVersion=4", "year, month, day",
		"delta.enableChangeDataFeed = true", `"protocol":{"minReaderVersion":1,"minWriterVersion":4}`, "claimx_task_full"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if _, err := delta.Open(t.Context(), mustStore(t, loc)); err == nil {
		t.Fatal("dry run wrote a table")
	}

	if _, errs, code := runTable(t, "table", "create", "--location", loc); code != ExitOK {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	if _, errs, code := runTable(t, "table", "create", "--location", loc); code != ExitFailure || !strings.Contains(errs, "already exists") {
		t.Fatalf("second create: exit %d: %s", code, errs)
	}
	if _, errs, code := runTable(t, "table", "create", "--location", loc, "--drop-existing"); code != ExitOK {
		t.Fatalf("create --drop-existing: exit %d: %s", code, errs)
	}

	// Write a commit so describe has files, rows and a txn.
	tb, err := delta.Open(t.Context(), mustStore(t, loc))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	row := map[string]any{"event_id": "e1", "event_type": "CUSTOM_TASK_ASSIGNED", "event_timestamp": ts,
		"processed_timestamp": ts, "task_id": 32513, "project_id": "p", "task_status": "assigned",
		"year": 2026, "month": 1, "day": 10}
	if _, err := tb.Append(t.Context(), []map[string]any{row}, delta.AppendOptions{Txns: []delta.Txn{{AppID: "w-t-0", Version: 41}}}); err != nil {
		t.Fatal(err)
	}

	out, errs, code = runTable(t, "table", "describe", loc, "--json")
	if code != ExitOK {
		t.Fatalf("describe: exit %d: %s", code, errs)
	}
	var d delta.Description
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if d.Version != 1 || d.NumFiles != 1 || d.NumRows != 1 || d.Txns["w-t-0"] != 41 || d.Protocol.MinWriterVersion != 4 ||
		strings.Join(d.PartitionColumns, ",") != "year,month,day" || d.Properties["delta.enableChangeDataFeed"] != "true" {
		t.Fatalf("describe: %+v", d)
	}
	out, _, code = runTable(t, "table", "describe", loc)
	if code != ExitOK || !strings.Contains(out, "w-t-0 = 41") || !strings.Contains(out, "task_id") {
		t.Fatalf("describe text: %s", out)
	}

	out, errs, code = runTable(t, "table", "history", loc, "--limit", "1")
	if code != ExitOK {
		t.Fatalf("history: exit %d: %s", code, errs)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "WRITE") || !strings.Contains(lines[1], "kpipe/") {
		t.Fatalf("history:\n%s", out)
	}

	if _, _, code := runTable(t, "table", "describe", filepath.Join(t.TempDir(), "none")); code != ExitFailure {
		t.Fatalf("describe of a missing table: exit %d", code)
	}
}

func mustStore(t *testing.T, loc string) delta.Storage {
	s, err := delta.OpenLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
