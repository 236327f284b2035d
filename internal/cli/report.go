//go:build !noduckdb

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kpipe/internal/config"
	"kpipe/internal/delta"
	"kpipe/internal/pipeline"
	"kpipe/internal/plugin"
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
		cacheDir   string
		section    string
	)
	cmd := &cobra.Command{
		Use:   "report [--table PATH] [--format table|csv|json|html] [--section NAME] [--sla 72h] [--stuck-after 72h] [--as-of auto|now|latest|RFC3339] [--task-id ID]",
		Short: reportShort,
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

--as-of is auto by default: now, unless the table's newest event of the
template is older than --stuck-after (simulated or historical data, which
measured against now would make every open assignment stuck): then that
newest event's time. "now" and "latest" (the newest event) choose one rule;
an RFC 3339 time is used as it is. Every format says which was used.

--format html writes one self-contained page (no external assets): summary,
status funnel, time-in-status distributions, SLA breaches by day and stuck
assignments as inline SVG charts, and every assignment's timeline, shown
when its id is clicked or the page is opened at #a-<assignment_id>.

--format csv writes one table, loadable as it is: --section names it
(default assignments, one row per assignment): summary, current_status,
time_in_status, stuck, assignments, funnel, time_in_status_distribution,
sla_breaches, timeline (one row per event of each assignment).

--task-id defaults to the task template the triggers of the
enabled task_trigger plugins in --config-dir are keyed by; when they name
several templates, or none, pass --task-id.

A table on S3 is read through the local cache "kpipe query" uses
(--cache-dir; see kpipe query --help).`,
		Example: `  kpipe report
  kpipe report --as-of 2026-02-01T00:00:00Z --sla 48h --stuck-after 24h
  kpipe report --format json --table data/delta/itel_cabinet_task_tracking
  kpipe report --format html > report.html
  kpipe report --format csv --section stuck > stuck.csv
  kpipe report --task-id 40001`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := report.FormatHTML
			if format != string(report.FormatHTML) {
				var err error
				if f, err = query.ParseFormat(format); err != nil {
					return usage(fmt.Errorf("--format: %w (or html)", err))
				}
			}
			opts := report.Options{TaskID: taskID, SLA: sla, StuckAfter: stuckAfter, Limit: limit}
			var errs []error
			switch asOf {
			case report.AsOfAuto, report.AsOfNow, report.AsOfLatest:
				opts.AsOfRule = asOf
			default:
				t, err := time.Parse(time.RFC3339Nano, asOf)
				if err != nil {
					errs = append(errs, fmt.Errorf("--as-of %q: want auto, now, latest or an RFC 3339 time such as 2026-02-01T00:00:00Z", asOf))
				}
				opts.AsOf = t
			}
			if cmd.Flags().Changed("section") {
				if f != query.FormatCSV {
					errs = append(errs, fmt.Errorf("--section %s: only --format csv writes one section; the other formats hold them all", section))
				} else if !slices.Contains(report.Sections, section) {
					errs = append(errs, fmt.Errorf("--section %q: want one of %s", section, strings.Join(report.Sections, ", ")))
				}
			}
			opts.Timelines = f == report.FormatHTML || (f == query.FormatCSV && report.NeedsTimelines(section))
			if sla <= 0 {
				errs = append(errs, fmt.Errorf("--sla %v: want a positive duration", sla))
			}
			if stuckAfter <= 0 {
				errs = append(errs, fmt.Errorf("--stuck-after %v: want a positive duration", stuckAfter))
			}
			if cmd.Flags().Changed("task-id") && taskID <= 0 {
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
			if !cmd.Flags().Changed("task-id") {
				id, err := configuredTaskID(env)
				if err != nil {
					return usage(err)
				}
				opts.TaskID = id
			}
			var qopts []query.Option
			if cacheDir != "" {
				qopts = append(qopts, query.WithCacheDir(cacheDir))
			}
			db, err := query.Open(cmd.Context(), table, qopts...)
			if err != nil {
				return err
			}
			defer db.Close()
			r, err := report.Build(cmd.Context(), db, opts)
			if err != nil {
				return err
			}
			if r.DroppedDuplicates, err = droppedDuplicates(cmd.Context(), table, r.TableVersion); err != nil {
				return err
			}
			if f == query.FormatCSV {
				return report.WriteCSV(env.Stdout, r, section)
			}
			return report.Write(env.Stdout, r, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&table, "table", defaultTableLocation, "Delta table folder or s3:// URL")
	fl.StringVar(&cacheDir, "cache-dir", "", "folder of the local copy of a table on S3 (default: kpipe/tables in the user's cache folder)")
	fl.StringVar(&format, "format", string(query.FormatTable), "output format: table, csv, json or html")
	fl.StringVar(&section, "section", report.DefaultSection, "with --format csv, the one section written: "+strings.Join(report.Sections, ", "))
	fl.DurationVar(&sla, "sla", report.DefaultSLA, "time within which an assignment should be completed")
	fl.DurationVar(&stuckAfter, "stuck-after", report.DefaultStuckAfter, "an open assignment is stuck when its status has lasted longer than this")
	fl.StringVar(&asOf, "as-of", report.AsOfAuto, "report time: auto, now, latest (the newest event) or RFC 3339; open intervals end here, later events are left out")
	fl.Int64Var(&taskID, "task-id", 0, "task template id (default: the one the plugins' triggers in --config-dir are keyed by)")
	fl.IntVar(&limit, "limit", report.DefaultLimit, "most stuck assignments listed (0: all)")
	return cmd
}

// configuredTaskID is the task template the triggers of the enabled
// task_trigger plugins in env's configuration folder are keyed by, when
// they name exactly one.
func configuredTaskID(env *Env) (int64, error) {
	plugins, err := config.LoadPlugins(env.ConfigDir, config.WithEnv(env.Getenv), config.WithPlugins(plugin.DefaultRegistry()))
	if err != nil {
		return 0, fmt.Errorf("--task-id not given, and the plugins of --config-dir %s could not be read for it (pass --task-id, or fix --config-dir): %w", env.ConfigDir, err)
	}
	ids, err := plugin.TriggerTaskIDs(plugins)
	if err != nil {
		return 0, fmt.Errorf("--task-id not given: %w", err)
	}
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		return 0, fmt.Errorf("--task-id not given, and no enabled task_trigger plugin in --config-dir %s has a trigger: pass --task-id with the task template id", env.ConfigDir)
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return 0, fmt.Errorf("--task-id not given, and the triggers in --config-dir %s are keyed by several task templates (%s): pass --task-id with one of them", env.ConfigDir, strings.Join(s, ", "))
}

// droppedDuplicates sums what the delta writer's dedupe recorded in the
// commitInfo of the table's commits up to version
// (pipeline.CommitInfoDuplicatesDropped): deliveries that never became rows.
// Commits removed by log cleanup are not counted.
func droppedDuplicates(ctx context.Context, location string, version int64) (int64, error) {
	store, err := delta.OpenLocation(location)
	if err != nil {
		return 0, err
	}
	tb, err := delta.Open(ctx, store)
	if err != nil {
		return 0, err
	}
	defer tb.Close(ctx)
	hist, err := tb.History(ctx, 0)
	if err != nil {
		return 0, fmt.Errorf("reading the history of %s: %w", location, err)
	}
	var n int64
	for _, c := range hist {
		if c.Version > version {
			continue
		}
		switch v := c.Info[pipeline.CommitInfoDuplicatesDropped].(type) {
		case float64:
			n += int64(v)
		case json.Number:
			i, _ := v.Int64()
			n += i
		case int64:
			n += v
		}
	}
	return n, nil
}
