//go:build !noduckdb

package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"kpipe/internal/query"
)

func init() { register(newQueryCmd) }

func newQueryCmd(env *Env) *cobra.Command {
	var (
		table  string
		format string
		file   string
		view   string
		cache  string
	)
	cmd := &cobra.Command{
		Use:   "query [--table PATH] [--format table|csv|json] [--file F | SQL]",
		Short: queryShort,
		Long: `Run SQL over the current snapshot of a Delta table with DuckDB.

The table is a view named after its folder (default itel_cabinet_task_tracking)
over the snapshot's active Parquet files; partition columns come from the Delta
log, timestamps are TIMESTAMP WITH TIME ZONE in UTC. The dialect is DuckDB's,
plus Spark's two-argument DATEDIFF(end, start) in days, so SPEC.md's sample
queries run as written.

--file runs every statement of an SQL file in order, printing each result
after its header comment; otherwise the arguments are one statement.

A table on S3 (--table s3://bucket/prefix/...) is read through a local cache
of its snapshot's data files, fetched with the AWS SDK's credentials and
endpoint (as kpipe table does; DuckDB's httpfs is not used): only the
snapshot's files, each checked against the size the log records and reused
by later runs. The cache is --cache-dir (default kpipe/tables under the
user's cache folder, ~/.cache on Linux), one folder per table URL; files no
snapshot has used for an hour are deleted.`,
		Example: `  kpipe query "SELECT task_status, COUNT(*) FROM itel_cabinet_task_tracking GROUP BY ALL"
  kpipe query --format csv --file scripts/delta_tables/itel_cabinet_queries.sql
  kpipe query --table s3://my-bucket/kpipe/delta/itel_cabinet_task_tracking "SELECT count(*) FROM itel_cabinet_task_tracking"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := query.ParseFormat(format)
			if err != nil {
				return usage(fmt.Errorf("--format: %w", err))
			}
			var stmts []query.Statement
			switch {
			case file != "" && len(args) > 0:
				return usage(errors.New("give either --file or an SQL statement, not both"))
			case file != "":
				data, err := os.ReadFile(file)
				if err != nil {
					return usage(fmt.Errorf("--file: %w", err))
				}
				stmts = query.Split(string(data))
				if len(stmts) == 0 {
					return usage(fmt.Errorf("--file %s: no SQL statements", file))
				}
			case len(args) > 0:
				stmts = query.Split(strings.Join(args, " "))
				if len(stmts) != 1 {
					return usage(fmt.Errorf("want one SQL statement, got %d (use --file for several)", len(stmts)))
				}
			default:
				return usage(errors.New("no SQL: give a statement or --file"))
			}
			var opts []query.Option
			if view != "" {
				opts = append(opts, query.WithView(view))
			}
			if cache != "" {
				opts = append(opts, query.WithCacheDir(cache))
			}
			db, err := query.Open(cmd.Context(), table, opts...)
			if err != nil {
				return err
			}
			defer db.Close()
			for i, st := range stmts {
				if file != "" {
					if i > 0 {
						fmt.Fprintln(env.Stdout)
					}
					header := st.Comment
					if header == "" {
						header = fmt.Sprintf("%s:%d", filepath.Base(file), st.Line)
					}
					for _, l := range strings.Split(header, "\n") {
						fmt.Fprintln(env.Stdout, strings.TrimRight("-- "+l, " "))
					}
				}
				if err := db.Print(cmd.Context(), env.Stdout, st.SQL, f); err != nil {
					if file != "" {
						return fmt.Errorf("%s:%d: %w", file, st.Line, err)
					}
					return err
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&table, "table", defaultTableLocation, "Delta table folder or s3:// URL")
	fl.StringVar(&cache, "cache-dir", "", "folder of the local copy of a table on S3 (default: kpipe/tables in the user's cache folder)")
	fl.StringVar(&format, "format", string(query.FormatTable), "output format: table, csv or json")
	fl.StringVar(&file, "file", "", "SQL file whose statements run in order")
	fl.StringVar(&view, "view", "", "name of the view over the table (default: the table folder's name)")
	return cmd
}
