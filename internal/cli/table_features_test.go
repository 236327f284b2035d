package cli

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kpipe/internal/delta"
)

// TestTableCreateWithFeatureProperties: `table create --property` makes a
// table with the feature on, which takes appends (schema evolution
// included), a checkpoint and a reread, and describe reads it.
func TestTableCreateWithFeatureProperties(t *testing.T) {
	cases := []struct {
		props   []string
		feature string
	}{
		{[]string{"delta.columnMapping.mode=name"}, "columnMapping"},
		{[]string{"delta.columnMapping.mode=id"}, "columnMapping"},
		{[]string{"delta.enableRowTracking=true"}, "rowTracking"},
		{[]string{"delta.enableInCommitTimestamps=true"}, "inCommitTimestamp"},
		{[]string{"delta.enableTypeWidening=true"}, "typeWidening"},
		{[]string{"delta.enableDeletionVectors=true"}, "deletionVectors"},
		{[]string{"delta.checkpointPolicy=v2"}, "v2Checkpoint"},
	}
	for _, c := range cases {
		t.Run(c.props[0], func(t *testing.T) {
			loc := filepath.Join(t.TempDir(), "tbl")
			args := []string{"table", "create", "--location", loc}
			for _, p := range c.props {
				args = append(args, "--property", p)
			}
			if out, errs, code := runTable(t, append(args, "--dry-run")...); code != ExitOK || !strings.Contains(out, c.feature) {
				t.Fatalf("dry run: exit %d: %s\n%s", code, errs, out)
			}
			if _, errs, code := runTable(t, args...); code != ExitOK {
				t.Fatalf("create: exit %d: %s", code, errs)
			}
			store := mustStore(t, loc)
			tb, err := delta.Open(t.Context(), store, delta.WithCheckpointInterval(2), delta.WithSyncCheckpoints())
			if err != nil {
				t.Fatal(err)
			}
			s0, _ := tb.Snapshot(t.Context())
			if p := s0.Protocol(); p.MinWriterVersion != 7 || !slices.Contains(p.WriterFeatures, c.feature) {
				t.Fatalf("protocol %+v lacks %s", p, c.feature)
			}
			ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
			for i := range 3 {
				row := map[string]any{"event_id": fmt.Sprintf("e%d", i), "event_type": "CUSTOM_TASK_ASSIGNED", "event_timestamp": ts,
					"processed_timestamp": ts, "task_id": 32513, "project_id": "p", "task_status": "assigned",
					"project_data": map[string]any{"name": "proj", "id": 7},
					"year":         2026, "month": 1, "day": 10}
				if _, err := tb.Append(t.Context(), []map[string]any{row}, delta.AppendOptions{SchemaEvolution: true}); err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
			}
			tb.Close(t.Context())
			re, err := delta.Open(t.Context(), store)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := re.Snapshot(t.Context())
			if s.CheckpointVersion() < 2 {
				t.Fatalf("checkpoint %d", s.CheckpointVersion())
			}
			rows, err := delta.ReadRows(t.Context(), store, s)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 3 {
				t.Fatalf("%d rows", len(rows))
			}
			for _, r := range rows {
				pd, _ := r["project_data"].(map[string]any)
				if r["task_status"] != "assigned" || pd["name"] != "proj" {
					t.Fatalf("row %v", r)
				}
			}
			if out, errs, code := runTable(t, "table", "describe", loc); code != ExitOK || !strings.Contains(out, "3") {
				t.Fatalf("describe: exit %d: %s\n%s", code, errs, out)
			}
		})
	}
	if _, errs, code := runTable(t, "table", "create", "--location", filepath.Join(t.TempDir(), "x"), "--property", "novalue"); code != ExitUsage || !strings.Contains(errs, "KEY=VALUE") {
		t.Fatalf("bad --property: exit %d: %s", code, errs)
	}
}
