package cli

import (
	"context"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"kpipe/internal/kafka"
)

func newTopicsListCmd(env *Env) *cobra.Command {
	var (
		file    string
		all     bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the topics of topics.yaml on the cluster: partitions, replicas, records",
		Long: `List, for each topic of topics.yaml (default <config-dir>/topics.yaml), what
the cluster named by KAFKA_BOOTSTRAP_SERVERS has: its partitions, replication
factor and records (log end minus log start, summed over partitions), or
"missing" (then run kpipe topics create). --all lists every topic of the
cluster, kpipe's or not. Exits 1 when a topic of topics.yaml is missing.`,
		Example: `  kpipe topics list
  KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 kpipe topics list --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			specs, cl, err := topicsClient(ctx, env, file)
			if err != nil {
				return err
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			details, err := adm.ListTopics(ctx)
			if err != nil {
				return fmt.Errorf("listing topics: %w", err)
			}
			names := make([]string, 0, len(specs))
			for _, s := range specs {
				names = append(names, s.Name)
			}
			if all {
				for _, n := range details.Names() {
					if !slices.Contains(names, n) {
						names = append(names, n)
					}
				}
			}
			starts, err := adm.ListStartOffsets(ctx, details.Names()...)
			if err != nil {
				return fmt.Errorf("listing log start offsets: %w", err)
			}
			ends, err := adm.ListEndOffsets(ctx, details.Names()...)
			if err != nil {
				return fmt.Errorf("listing log end offsets: %w", err)
			}
			tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICAS\tRECORDS\tSTATE")
			var missing []string
			for _, n := range names {
				d, ok := details[n]
				if !ok || d.Err != nil {
					missing = append(missing, n)
					fmt.Fprintf(tw, "%s\t-\t-\t-\tmissing\n", n)
					continue
				}
				var records int64
				ends.Each(func(o kadm.ListedOffset) {
					if o.Topic != n || o.Err != nil {
						return
					}
					if s, ok := starts.Lookup(n, o.Partition); ok && s.Err == nil {
						records += o.Offset - s.Offset
					}
				})
				state := "ok"
				if !slices.ContainsFunc(specs, func(s kafka.TopicSpec) bool { return s.Name == n }) {
					state = "not in topics.yaml"
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", n, len(d.Partitions), d.Partitions.NumReplicas(), records, state)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(missing) > 0 {
				return fmt.Errorf("%d topics of %s missing on the cluster: %v (run kpipe topics create)", len(missing), file, missing)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "topics file (default <config-dir>/topics.yaml)")
	f.BoolVar(&all, "all", false, "list every topic of the cluster, not only topics.yaml's")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}
