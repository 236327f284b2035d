package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"kpipe/internal/delta"
	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

// generateAndVerify produces o.Events events, waits until the table holds
// every tracked event of them, and checks it against the simulator's ground
// truth.
func (s *Stack) generateAndVerify(ctx context.Context, pub *kafka.Publisher) error {
	o, out, world, tablePath := s.o, s.out, s.world, s.info.Table
	start := time.Now()
	// A table kept from earlier runs (the same --data) holds their rows:
	// only what this run adds is checked.
	before, err := TableRows(ctx, tablePath)
	if err != nil && !errors.Is(err, delta.ErrNotATable) {
		return err
	}
	if len(before) > 0 {
		fmt.Fprintf(out, "the table already holds %d rows of earlier runs; checking only what this run adds\n", len(before))
	}
	if err := world.Generate(ctx, sim.GenerateOptions{Rate: o.Rate, Limit: o.Events}, pub.Publish); err != nil {
		return fmt.Errorf("generating events: %w", err)
	}
	if err := pub.Flush(ctx); err != nil {
		return err
	}
	want := expectedEvents(world, o.Events, sim.TemplateITelCabinet)
	fmt.Fprintf(out, "generated %d events in %s; waiting for the table to hold the %d events of task %d\n",
		o.Events, time.Since(start).Round(time.Millisecond), len(want), sim.TemplateITelCabinet)

	var (
		rows      []map[string]any
		lastCount = -1
		lastGrow  = time.Now()
	)
	for {
		var err error
		rows, err = TableRows(ctx, tablePath)
		if err != nil && !errors.Is(err, delta.ErrNotATable) {
			return err
		}
		rows = rowsAdded(before, rows)
		if len(rows) >= len(want) {
			break
		}
		if len(rows) != lastCount {
			lastCount, lastGrow = len(rows), time.Now()
		} else if time.Since(lastGrow) > o.WaitTimeout {
			return fmt.Errorf("the table has held %d of %d expected rows for %s: see the logs above and the error topics", len(rows), len(want), o.WaitTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return reportTable(out, tablePath, rows, want, time.Since(start))
}

// rowsAdded returns the rows of after that before did not hold: the
// table is append-only, so they are the rows past before's count of each
// event id.
func rowsAdded(before, after []map[string]any) []map[string]any {
	if len(before) == 0 {
		return after
	}
	held := map[any]int{}
	for _, r := range before {
		held[r["event_id"]]++
	}
	var added []map[string]any
	for _, r := range after {
		if id := r["event_id"]; held[id] > 0 {
			held[id]--
			continue
		}
		added = append(added, r)
	}
	return added
}

// expectedEvents returns the ids of the events of template among the first
// n events of the world.
func expectedEvents(world *sim.Sim, n int, template int64) map[string]bool {
	first := map[string]bool{}
	for i, e := range world.Events() {
		if i >= n {
			break
		}
		first[e.EventID] = true
	}
	want := map[string]bool{}
	for _, e := range world.Manifest().EventsForTemplate(template) {
		if first[e.EventID] {
			want[e.EventID] = true
		}
	}
	return want
}

// TableRows reads every row of the table at path.
func TableRows(ctx context.Context, path string) ([]map[string]any, error) {
	store, err := delta.OpenLocation(path)
	if err != nil {
		return nil, err
	}
	t, err := delta.Open(ctx, store)
	if err != nil {
		return nil, err
	}
	snap, err := t.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return delta.ReadRows(ctx, store, snap)
}

// reportTable prints the summary of a --events run and fails unless the
// table holds exactly the wanted events, each once.
func reportTable(w io.Writer, tablePath string, rows []map[string]any, want map[string]bool, took time.Duration) error {
	seen := map[string]int{}
	var unexpected []string
	for _, r := range rows {
		id, _ := r["event_id"].(string)
		seen[id]++
		if !want[id] {
			unexpected = append(unexpected, id)
		}
	}
	var missing, dups []string
	for id := range want {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id, n := range seen {
		if n > 1 {
			dups = append(dups, id)
		}
	}
	fmt.Fprintf(w, "\ntable %s\n  rows      %d (expected %d)\n  missing   %d\n  duplicate %d\n  unexpected %d\n  took      %s\n",
		tablePath, len(rows), len(want), len(missing), len(dups), len(unexpected), took.Round(time.Millisecond))
	fmt.Fprintf(w, "\nquery it:\n  kpipe query --table %s \"SELECT task_status, count(*) FROM itel_cabinet_task_tracking GROUP BY 1\"\n", tablePath)
	if len(missing)+len(dups)+len(unexpected) > 0 {
		return fmt.Errorf("the table does not match the simulator's ground truth: %d missing, %d duplicated, %d unexpected", len(missing), len(dups), len(unexpected))
	}
	fmt.Fprintln(w, "\nOK: the table holds every tracked event exactly once")
	return nil
}
