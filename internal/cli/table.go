package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kpipe/internal/delta"
	"kpipe/internal/pipeline"
)

func init() { register(newTableCmd) }

// defaultTableLocation is where `kpipe table create` puts the SPEC table
// and where `kpipe up` and the worker write it: the default table of every
// command that reads one.
const defaultTableLocation = "./data/delta/itel_cabinet_task_tracking"

func newTableCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "table",
		Short: "Create, inspect and optimize the Delta table",
	}
	cmd.AddCommand(newTableCreateCmd(env), newTableDescribeCmd(env), newTableHistoryCmd(env), newTableVacuumCmd(env), newTableOptimizeCmd(env))
	return cmd
}

func newTableCreateCmd(env *Env) *cobra.Command {
	var (
		location     string
		defFile      string
		dryRun       bool
		dropExisting bool
		properties   []string
		yes          bool
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the itel_cabinet_task_tracking Delta table",
		Long: `Create the Delta table defined by <config-dir>/tables/itel_cabinet_task_tracking.yaml
(or --def) at --location: protocol (1, 4), the schema, year/month/day
partitioning and the table properties. --dry-run prints the schema,
partitioning, properties and the first commit, and writes nothing.
--drop-existing deletes a table already at the location first: it says how
many rows and files that is, and asks on a terminal; elsewhere it needs --yes.

--property KEY=VALUE (repeatable) sets a table property over the
definition's. Feature properties give the table the protocol Delta gives
it (reader 3, writer 7 with table features): delta.columnMapping.mode=name
or id (physical column names and ids), delta.enableRowTracking=true (row
ids), delta.enableInCommitTimestamps=true, delta.enableTypeWidening=true,
delta.enableDeletionVectors=true, delta.checkpointPolicy=v2.`,
		Example: `  kpipe table create --dry-run
  kpipe table create
  kpipe table create --drop-existing --yes   # in a script
  kpipe table create --location ./data/delta/t --property delta.columnMapping.mode=name
  kpipe table create --location ./data/delta/t --property delta.enableRowTracking=true --property delta.enableInCommitTimestamps=true --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if defFile == "" {
				defFile = filepath.Join(env.ConfigDir, "tables", "itel_cabinet_task_tracking.yaml")
			}
			def, err := delta.LoadTableDef(defFile)
			if err != nil {
				return usage(err)
			}
			if def.Properties, err = withProperties(def.Properties, properties); err != nil {
				return usage(err)
			}
			store, err := delta.OpenLocationWith(location, env.storageOptions()...)
			if err != nil {
				return usage(err)
			}
			ctx := cmd.Context()
			var plan dropPlan
			if dropExisting {
				if plan, err = planDrop(ctx, store); err != nil {
					return err
				}
			}
			if dryRun {
				proto, md, commit, err := delta.CreateCommit(def, time.Now())
				if err != nil {
					return usage(err)
				}
				if dropExisting {
					fmt.Fprintf(env.Stdout, "--drop-existing: %s\n", plan)
				}
				return printCreatePlan(env.Stdout, location, def, proto, md, commit, dropExisting)
			}
			if dropExisting {
				if err := confirmDrop(env, store.Location(), plan, yes); err != nil {
					return err
				}
				if err := delta.Drop(ctx, store); err != nil {
					return err
				}
			}
			tb, err := delta.Create(ctx, store, def, delta.WithLogger(env.Logger))
			if err != nil {
				if errors.Is(err, delta.ErrTableExists) {
					return fmt.Errorf("%w (use --drop-existing to replace it)", err)
				}
				return err
			}
			snap, err := tb.Snapshot(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "created table %s at %s (version %d)\n", def.Name, store.Location(), snap.Version())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&location, "location", defaultTableLocation, "table location: a local folder")
	f.StringVar(&defFile, "def", "", "table definition YAML (default <config-dir>/tables/itel_cabinet_task_tracking.yaml)")
	f.BoolVar(&dryRun, "dry-run", false, "print what would be created and write nothing")
	f.BoolVar(&dropExisting, "drop-existing", false, "delete the table at the location first (says how many rows and files; asks, or needs --yes off a terminal)")
	f.BoolVar(&yes, "yes", false, "with --drop-existing: drop without asking")
	f.StringArrayVar(&properties, "property", nil, "table property KEY=VALUE over the definition's (repeatable)")
	return cmd
}

// withProperties returns props with the --property KEY=VALUE settings
// applied over them.
func withProperties(props map[string]string, settings []string) (map[string]string, error) {
	if len(settings) == 0 {
		return props, nil
	}
	out := make(map[string]string, len(props)+len(settings))
	for k, v := range props {
		out[k] = v
	}
	for _, s := range settings {
		k, v, ok := strings.Cut(s, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return nil, fmt.Errorf("--property %q: want KEY=VALUE, e.g. delta.columnMapping.mode=name", s)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

func printCreatePlan(w io.Writer, location string, def delta.TableDef, proto delta.Protocol, md delta.Metadata, commit []byte, drop bool) error {
	fmt.Fprintf(w, "table:        %s\nlocation:     %s\n", def.Name, location)
	if drop {
		fmt.Fprintln(w, "would first drop the table at the location")
	}
	fmt.Fprintf(w, "protocol:     minReaderVersion=%d minWriterVersion=%d\n", proto.MinReaderVersion, proto.MinWriterVersion)
	fmt.Fprintf(w, "partitioned:  %s\n", strings.Join(def.PartitionColumns, ", "))
	fmt.Fprintln(w, "schema:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, f := range def.Schema.Fields {
		typ := f.Type.String()
		if slices.Contains(def.Inferred, f.Name) {
			typ = "struct<...> (fields inferred from data; added on first write)"
		}
		null := ""
		if !f.Nullable {
			null = "NOT NULL"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Name, typ, null)
	}
	tw.Flush()
	fmt.Fprintln(w, "properties:")
	for _, k := range slices.Sorted(maps.Keys(md.Configuration)) {
		fmt.Fprintf(w, "  %s = %s\n", k, md.Configuration[k])
	}
	fmt.Fprintln(w, "first commit (_delta_log/00000000000000000000.json):")
	_, err := w.Write(commit)
	return err
}

func openTable(cmd *cobra.Command, env *Env, location string) (*delta.Table, delta.Storage, error) {
	store, err := delta.OpenLocation(location)
	if err != nil {
		return nil, nil, usage(err)
	}
	tb, err := delta.Open(cmd.Context(), store, delta.WithLogger(env.Logger))
	if err != nil {
		return nil, nil, err
	}
	return tb, store, nil
}

func newTableDescribeCmd(env *Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe [PATH]",
		Short: "Show a Delta table's version, protocol, schema, files and txn versions",
		Long: `Show the latest snapshot of the Delta table at PATH (default ` + defaultTableLocation + `,
where kpipe up and kpipe worker write it, as for kpipe query): version, protocol,
schema, partition columns, properties, number of files, rows and bytes, the
txn version of every application id, and the last checkpoint. --json prints
a stable JSON object (fields are only ever added) for other tools.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tb, store, err := openTable(cmd, env, tableArg(args))
			if err != nil {
				return err
			}
			snap, err := tb.Snapshot(cmd.Context())
			if err != nil {
				return err
			}
			d := delta.Describe(store.Location(), snap)
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(d)
			}
			return printDescription(env.Stdout, d, snap.Schema())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printDescription(w io.Writer, d delta.Description, schema *delta.StructType) error {
	fmt.Fprintf(w, "location:      %s\n", d.Location)
	fmt.Fprintf(w, "version:       %d (%s)\n", d.Version, d.Timestamp.Format(time.RFC3339))
	if d.Name != "" {
		fmt.Fprintf(w, "name:          %s\n", d.Name)
	}
	fmt.Fprintf(w, "protocol:      minReaderVersion=%d minWriterVersion=%d", d.Protocol.MinReaderVersion, d.Protocol.MinWriterVersion)
	if len(d.Protocol.ReaderFeatures)+len(d.Protocol.WriterFeatures) > 0 {
		fmt.Fprintf(w, " readerFeatures=%v writerFeatures=%v", d.Protocol.ReaderFeatures, d.Protocol.WriterFeatures)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "partitioned:   %s\n", strings.Join(d.PartitionColumns, ", "))
	rows := fmt.Sprint(d.NumRows)
	if !d.RowsExact {
		rows += " (some files have no stats)"
	}
	fmt.Fprintf(w, "files:         %d\nrows:          %s\nbytes:         %d\n", d.NumFiles, rows, d.SizeBytes)
	if d.LastCheckpoint != nil {
		fmt.Fprintf(w, "checkpoint:    %d\n", *d.LastCheckpoint)
	} else {
		fmt.Fprintln(w, "checkpoint:    none")
	}
	fmt.Fprintln(w, "schema:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, f := range schema.Fields {
		null := ""
		if !f.Nullable {
			null = "NOT NULL"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Name, f.Type, null)
	}
	tw.Flush()
	fmt.Fprintln(w, "properties:")
	for _, k := range d.SortedProperties() {
		fmt.Fprintf(w, "  %s = %s\n", k, d.Properties[k])
	}
	fmt.Fprintln(w, "txns:")
	for _, k := range slices.Sorted(maps.Keys(d.Txns)) {
		fmt.Fprintf(w, "  %s = %d\n", k, d.Txns[k])
	}
	return nil
}

func newTableHistoryCmd(env *Env) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history [PATH]",
		Short: "List a Delta table's commits, newest first",
		Long: `List the commits of the Delta table at PATH (default ` + defaultTableLocation + `),
newest first: version, time, operation, the engine that wrote it (kpipe/VERSION
for kpipe's) and the operation's metrics.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usage(fmt.Errorf("--limit %d: want 0 (all) or more", limit))
			}
			tb, _, err := openTable(cmd, env, tableArg(args))
			if err != nil {
				return err
			}
			hist, err := tb.History(cmd.Context(), limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tTIMESTAMP\tOPERATION\tENGINE\tMETRICS")
			for _, c := range hist {
				metrics := ""
				if m, ok := c.Info["operationMetrics"].(map[string]any); ok {
					var parts []string
					for _, k := range slices.Sorted(maps.Keys(m)) {
						parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
					}
					metrics = strings.Join(parts, " ")
				}
				if n, ok := c.Info[pipeline.CommitInfoDuplicatesDropped]; ok {
					metrics = strings.TrimSpace(fmt.Sprintf("%s duplicatesDropped=%v", metrics, n))
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", c.Version, c.Timestamp.Format(time.RFC3339), c.Operation, c.EngineInfo, metrics)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "show at most N commits (0: all)")
	return cmd
}

// tableArg is the table path of a command's optional PATH argument: the
// one given, else where kpipe up and kpipe worker write the table.
func tableArg(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return defaultTableLocation
}
