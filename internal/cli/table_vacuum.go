package cli

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kpipe/internal/delta"
)

func newTableVacuumCmd(env *Env) *cobra.Command {
	var (
		retain        string
		dryRun, force bool
	)
	cmd := &cobra.Command{
		Use:   "vacuum PATH",
		Short: "Delete the data files no version within the retention needs",
		Long: `Delete the data files of the Delta table at PATH (a folder or s3://bucket/prefix)
that no snapshot within the retention references: files removed from the table
(by compaction, OPTIMIZE, deletes) longer ago than the retention, and orphans
that no commit names (left by writers that lost a commit race or crashed)
last modified longer ago than the retention, so that a file a writer has not
committed yet is kept.

The retention is the table's delta.deletedFileRetentionDuration (default
168h, one week) unless --retain says otherwise; a shorter one than the
table's is refused unless --force, since it can delete files that readers of
older versions or writers that have not committed yet still need. Nothing
under _delta_log is deleted, nor hidden files and folders (names starting
with _ or ., partition folders excepted). Versions older than the retention
can no longer be read afterwards.

Unless --dry-run, it commits "VACUUM START" and "VACUUM END" entries (shown
by kpipe table history with their metrics). --dry-run lists the files and
deletes nothing. Expired log entries are not its business: every writer
deletes those after a checkpoint (delta.logRetentionDuration, 30 days).`,
		Example: `  # What would go, with the table's retention
  kpipe table vacuum ./data/delta/itel_cabinet_task_tracking --dry-run

  # Delete it
  kpipe table vacuum ./data/delta/itel_cabinet_task_tracking

  # Keep two weeks
  kpipe table vacuum s3://bucket/delta/itel_cabinet_task_tracking --retain 336h

  # Below the table's retention: only with no reader or writer about
  kpipe table vacuum ./data/delta/itel_cabinet_task_tracking --retain 1h --force`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := delta.VacuumOptions{DryRun: dryRun, Force: force}
			if cmd.Flags().Changed("retain") {
				d, err := delta.ParseInterval(retain)
				if err != nil {
					return usage(fmt.Errorf("--retain: %w (e.g. 168h or \"interval 7 days\")", err))
				}
				opts.Retention = &d
			}
			tb, store, err := openTable(cmd, env, args[0])
			if err != nil {
				return err
			}
			// A checkpoint its commits made due runs in the background.
			defer tb.Close(cmd.Context())
			res, err := tb.Vacuum(cmd.Context(), opts)
			if errors.Is(err, delta.ErrRetentionTooShort) {
				return usage(err)
			}
			if err != nil && res.Files == nil {
				return err
			}
			if perr := printVacuum(env.Stdout, store.Location(), res); perr != nil && err == nil {
				err = perr
			}
			return err
		},
	}
	cmd.Flags().StringVar(&retain, "retain", "", "keep files unreferenced for less than this (e.g. 168h, \"interval 7 days\"; default: the table's delta.deletedFileRetentionDuration)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list the files to delete, delete nothing")
	cmd.Flags().BoolVar(&force, "force", false, "allow --retain below the table's retention")
	return cmd
}

func printVacuum(w io.Writer, location string, r delta.VacuumResult) error {
	fmt.Fprintf(w, "vacuum of %s at version %d: retention %s (the table's: %s), cutoff %s\n",
		location, r.Version, r.Retention, r.TableRetention, r.Cutoff.UTC().Format(time.RFC3339))
	var orphans, removed int
	for _, f := range r.Files {
		if f.Removed {
			removed++
		} else {
			orphans++
		}
	}
	verb := "deleted"
	n := r.Deleted
	if r.DryRun {
		verb, n = "would delete", len(r.Files)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tBYTES\tMODIFIED\tFILE")
		for _, f := range r.Files {
			kind := "orphan"
			if f.Removed {
				kind = "removed"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", kind, f.Size, f.ModTime.UTC().Format(time.RFC3339), f.Key)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%s %d of %d files, %d bytes (%d removed past retention, %d orphans); kept %d referenced and %d newer than the cutoff\n",
		verb, n, len(r.Files), r.Bytes, removed, orphans, r.Referenced, r.Young)
	return err
}
