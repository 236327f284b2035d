package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"kpipe/internal/query"
	"kpipe/internal/report"
)

func init() { register(newReportCmd) }

func newReportCmd(env *Env) *cobra.Command {
	var (
		table      string
		format     string
		sla        time.Duration
		stuckAfter time.Duration
		asOf       string
		taskID     int64
		limit      int
	)
	cmd := &cobra.Command{
		Use:   "report [--table PATH] [--format table|csv|json] [--sla 72h] [--stuck-after 72h] [--as-of RFC3339] [--task-id 32513]",
		Short: "Task lifecycles: time in each status, SLA, stuck tasks",
		Long: `Report the lifecycles of one task template's assignments from the Delta
table's current snapshot (DuckDB over the same view as "kpipe query").

For each assignment: first seen, current status and since when, transitions,
reassignments and reopens, completed or cancelled, time open (created to
completed or cancelled, or to --as-of) and time in each status (from a row to
the assignment's next row; an open assignment's last status lasts until
--as-of). Rows are ordered by event_timestamp, then processed_timestamp, then
event_id; a replayed event_id counts once; events after --as-of are left out.

Across assignments: counts by current status, median and p90 time to
complete, time in each status (median, p90, total), the share of completed
assignments completed within --sla and the open ones already past it, and the
open assignments whose current status has lasted over --stuck-after, oldest
first (at most --limit).

--as-of defaults to now; pass it for data of another time, such as the
simulator's.`,
		Example: `  kpipe report
  kpipe report --as-of 2026-02-01T00:00:00Z --sla 48h --stuck-after 24h
  kpipe report --format json --table data/delta/itel_cabinet_task_tracking`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := query.ParseFormat(format)
			if err != nil {
				return usage(fmt.Errorf("--format: %w", err))
			}
			opts := report.Options{TaskID: taskID, SLA: sla, StuckAfter: stuckAfter, Limit: limit, AsOf: time.Now()}
			var errs []error
			if asOf != "" {
				t, err := time.Parse(time.RFC3339Nano, asOf)
				if err != nil {
					errs = append(errs, fmt.Errorf("--as-of %q: want an RFC 3339 time such as 2026-02-01T00:00:00Z", asOf))
				}
				opts.AsOf = t
			}
			if sla <= 0 {
				errs = append(errs, fmt.Errorf("--sla %v: want a positive duration", sla))
			}
			if stuckAfter <= 0 {
				errs = append(errs, fmt.Errorf("--stuck-after %v: want a positive duration", stuckAfter))
			}
			if taskID <= 0 {
				errs = append(errs, fmt.Errorf("--task-id %d: want a positive template id", taskID))
			}
			if limit < 0 {
				errs = append(errs, fmt.Errorf("--limit %d: want 0 (no limit) or more", limit))
			}
			if len(errs) > 0 {
				return usage(errors.Join(errs...))
			}
			if limit == 0 {
				opts.Limit = -1 // report.Options: negative is no limit
			}
			db, err := query.Open(cmd.Context(), table)
			if err != nil {
				return err
			}
			defer db.Close()
			r, err := report.Build(cmd.Context(), db, opts)
			if err != nil {
				return err
			}
			return report.Write(env.Stdout, r, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&table, "table", defaultQueryTable, "Delta table folder")
	fl.StringVar(&format, "format", string(query.FormatTable), "output format: table, csv or json")
	fl.DurationVar(&sla, "sla", report.DefaultSLA, "time within which an assignment should be completed")
	fl.DurationVar(&stuckAfter, "stuck-after", report.DefaultStuckAfter, "an open assignment is stuck when its status has lasted longer than this")
	fl.StringVar(&asOf, "as-of", "", "report time, RFC 3339 (default now): open intervals end here, later events are left out")
	fl.Int64Var(&taskID, "task-id", report.DefaultTaskID, "task template id")
	fl.IntVar(&limit, "limit", report.DefaultLimit, "most stuck assignments listed (0: all)")
	return cmd
}
