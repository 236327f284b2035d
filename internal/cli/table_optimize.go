package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"kpipe/internal/delta"
)

func newTableOptimizeCmd(env *Env) *cobra.Command {
	var (
		where      string
		zorder     []string
		targetSize string
		dryRun     bool
	)
	cmd := &cobra.Command{
		Use:   "optimize PATH",
		Short: "Compact a Delta table's small files, optionally Z-ordered",
		Long: `Rewrite the small files of the Delta table at PATH (a folder or s3://bucket/prefix)
into files near the target size, in one OPTIMIZE commit (remove and add
actions with dataChange=false: the rows stay the same, readers and
concurrent writers are unaffected, and "table history" shows its metrics).

Bin-packing (the default): in each partition, the files smaller than the
target are packed, oldest first, into files of about the target size.

--zorder COL,...: every file of each partition is rewritten with its rows
sorted by the Z-order of the columns (the bits of their value ranks,
interleaved), so that each file covers narrow ranges of all of them and a
filter such as "task_id = 7 AND task_status = 'done'" skips most files by
their min/max statistics. The columns must be data columns, not partition
columns; a partition's rows are held in memory while it is rewritten.

--where limits the rewrite to the partitions a predicate over partition
columns accepts (=, <>, <, <=, >, >=, IN (...), IS [NOT] NULL, AND, OR, NOT).

--target-size overrides the table's delta.targetFileSize (default 128MiB):
bytes, or a number with a unit (64MiB, 512mb, 1g; units are powers of 1024).

A concurrent append never conflicts with it. If a concurrent commit removes
a file it is rewriting, it gives way: it deletes what it wrote and plans
again (three tries), then fails (exit 1) and may simply be run again.`,
		Example: `  kpipe table optimize ./data/delta/itel_cabinet_task_tracking
  kpipe table optimize ./data/delta/itel_cabinet_task_tracking --where "year = 2026 AND month = 1" --dry-run
  kpipe table optimize s3://bucket/delta/itel_cabinet_task_tracking --zorder task_id,task_status
  kpipe table optimize ./tbl --target-size 32MiB`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts delta.OptimizeOptions
			opts.DryRun = dryRun
			if targetSize != "" {
				n, err := delta.ParseSize(targetSize)
				if err != nil || n <= 0 {
					return usage(fmt.Errorf("--target-size %q: want a size above 0 such as 64MiB", targetSize))
				}
				opts.TargetSize = n
			}
			for _, c := range zorder {
				if c = strings.TrimSpace(c); c != "" {
					opts.ZOrderBy = append(opts.ZOrderBy, c)
				}
			}
			tb, store, err := openTable(cmd, env, args[0])
			if err != nil {
				return err
			}
			defer tb.Close(cmd.Context())
			snap, err := tb.Snapshot(cmd.Context())
			if err != nil {
				return err
			}
			md := snap.Metadata()
			if where != "" {
				p, err := delta.ParsePredicate(md.Schema, md.PartitionColumns, where)
				if err != nil {
					return usage(fmt.Errorf("--where: %w", err))
				}
				if !p.PartitionOnly() {
					return usage(fmt.Errorf("--where %q: names %s, but may name only partition columns (%s): OPTIMIZE rewrites whole partitions",
						where, strings.Join(nonPartition(p.Columns(), md.PartitionColumns), ", "), strings.Join(md.PartitionColumns, ", ")))
				}
				opts.Where = p
			}
			filesBefore := snap.NumFiles()
			res, err := tb.Optimize(cmd.Context(), opts)
			if errors.Is(err, delta.ErrPredicate) {
				return usage(err)
			}
			var ce *delta.ConflictError
			if errors.As(err, &ce) {
				return fmt.Errorf("%w (gave way %d times to concurrent commits that removed files it was rewriting; run it again)", err, res.Attempts)
			}
			if err != nil {
				return err
			}
			after, err := tb.Snapshot(cmd.Context())
			if err != nil {
				return err
			}
			printOptimize(env.Stdout, store.Location(), opts, res, filesBefore, after.NumFiles())
			return nil
		},
	}
	cmd.Flags().StringVar(&where, "where", "", "rewrite only the partitions this predicate over partition columns accepts")
	cmd.Flags().StringSliceVar(&zorder, "zorder", nil, "Z-order each partition's rows by these data columns (comma-separated)")
	cmd.Flags().StringVar(&targetSize, "target-size", "", "target file size (default: the table's delta.targetFileSize, else 128MiB)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be rewritten, change nothing")
	return cmd
}

func nonPartition(cols, parts []string) []string {
	var out []string
	for _, c := range cols {
		isPart := false
		for _, p := range parts {
			isPart = isPart || p == c
		}
		if !isPart {
			out = append(out, c)
		}
	}
	return out
}

func printOptimize(w io.Writer, location string, opts delta.OptimizeOptions, res delta.OptimizeResult, before, after int) {
	mode := "bin-packing"
	if len(opts.ZOrderBy) > 0 {
		mode = "Z-order by " + strings.Join(opts.ZOrderBy, ", ")
	}
	scope := "every partition"
	if opts.Where != nil {
		scope = "partitions where " + opts.Where.String()
	}
	switch {
	case res.RemovedFiles == 0:
		fmt.Fprintf(w, "nothing to optimize in %s (%s, %s): %d files in scope, %s, none to rewrite at version %d\n",
			location, mode, scope, res.FilesConsidered, sizeString(res.BytesConsidered), res.ReadVersion)
		return
	case opts.DryRun:
		fmt.Fprintf(w, "dry run: %s at version %d (%s, %s)\n", location, res.ReadVersion, mode, scope)
		fmt.Fprintf(w, "  would rewrite %d files (%s, %d rows) in %d partitions into about %d files\n",
			res.RemovedFiles, sizeString(res.RemovedBytes), res.Rows, res.Partitions, res.AddedFiles)
		fmt.Fprintf(w, "  files in the table: %d now, about %d after\n", before, before-res.RemovedFiles+res.AddedFiles)
		return
	}
	fmt.Fprintf(w, "optimized %s: version %d (from %d; %s, %s)\n", location, res.Version, res.ReadVersion, mode, scope)
	fmt.Fprintf(w, "  rewrote %d files (%s) into %d files (%s), %d rows, in %d partitions\n",
		res.RemovedFiles, sizeString(res.RemovedBytes), res.AddedFiles, sizeString(res.AddedBytes), res.Rows, res.Partitions)
	fmt.Fprintf(w, "  files in the table: %d before, %d after\n", before, after)
}

// sizeString formats a byte count with a binary unit.
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
