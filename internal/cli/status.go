package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"kpipe/internal/config"
	"kpipe/internal/delta"
	"kpipe/internal/dlq"
	"kpipe/internal/enrich"
	"kpipe/internal/kafka"
)

func init() { register(newStatusCmd) }

func newStatusCmd(env *Env) *cobra.Command {
	var (
		table    string
		prefix   string
		addrs    []string
		noErrors bool
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the pipeline's state: group lag per partition, the table, error records, worker readiness",
		Long: `Show, in one look, where the pipeline stands:

  groups   each consumer group's state, members and lag per partition: the
           enrichment worker's and every worker's of workers.yaml (with
           --id-prefix, kpipe up's: "kpipe-up-")
  table    the Delta table's version, files, rows and its last commit's time
           and operation (--table, default where kpipe up and kpipe worker
           write it)
  errors   the records on each error topic by class (read without a
           consumer group: nothing is consumed; --no-errors skips it)
  ready    with --metrics ADDR (repeatable), each worker's /readyz answer
           and its reason

Kafka settings come from KAFKA_BOOTSTRAP_SERVERS and the other KAFKA_*
variables. It exits 1 when a worker given with --metrics is not ready or
cannot be asked, or when Kafka or the table cannot be read.`,
		Example: `  kpipe status
  kpipe status --metrics 127.0.0.1:9464 --metrics 127.0.0.1:9465
  kpipe status --id-prefix kpipe-up- --table data/delta/itel_cabinet_task_tracking`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var failed []string
			if err := statusKafka(ctx, env, prefix, !noErrors); err != nil {
				fmt.Fprintf(env.Stdout, "kafka: %v\n", err)
				failed = append(failed, "kafka")
			}
			if err := statusTable(ctx, env.Stdout, table); err != nil {
				fmt.Fprintf(env.Stdout, "table %s: %v\n", table, err)
				failed = append(failed, "table")
			}
			if len(addrs) > 0 {
				fmt.Fprintln(env.Stdout, "\nready")
				for _, a := range addrs {
					code, body, err := readyz(ctx, a)
					switch {
					case err != nil:
						fmt.Fprintf(env.Stdout, "  %s  unreachable: %v\n", a, err)
						failed = append(failed, a)
					case code != http.StatusOK:
						fmt.Fprintf(env.Stdout, "  %s  NOT READY (%d): %s\n", a, code, body)
						failed = append(failed, a)
					default:
						fmt.Fprintf(env.Stdout, "  %s  ready: %s\n", a, body)
					}
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("not healthy: %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&table, "table", defaultTableLocation, "Delta table folder")
	f.StringVar(&prefix, "id-prefix", "", `prefix of the consumer groups ("kpipe-up-" for kpipe up's)`)
	f.StringArrayVar(&addrs, "metrics", nil, "a worker's metrics address (host:port) whose /readyz to ask; repeatable")
	f.BoolVar(&noErrors, "no-errors", false, "do not read the error topics")
	f.DurationVar(&timeout, "timeout", 60*time.Second, "give up after this long")
	return cmd
}

// statusKafka prints the groups' lag and the error topics' records.
func statusKafka(ctx context.Context, env *Env, prefix string, errorsToo bool) error {
	cfg, err := loadWorkersConfig(env)
	if err != nil {
		return err
	}
	groups := []string{prefix + enrich.DefaultGroup}
	errTopics := []string{kafka.TopicEnrichmentErrors}
	for _, w := range cfg.Workers {
		if w.ConsumerGroup != "" {
			groups = append(groups, prefix+w.ConsumerGroup)
		}
		if w.ErrorTopic != "" && !slices.Contains(errTopics, w.ErrorTopic) {
			errTopics = append(errTopics, w.ErrorTopic)
		}
	}
	kcfg, err := kafka.ConfigFromEnv(env.Getenv)
	if err == nil {
		err = kcfg.Validate()
	}
	if err != nil {
		return usage(err)
	}
	seeds, err := kcfg.Opts(env.Logger)
	if err != nil {
		return usage(err)
	}
	cl, err := checkedClient(ctx, kcfg, env.Logger)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return fmt.Errorf("reading group lag: %w", err)
	}
	w := env.Stdout
	fmt.Fprintf(w, "groups (%s)\n", strings.Join(kcfg.Brokers, ","))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, g := range groups {
		l, ok := lags[g]
		if !ok || l.Error() == nil && (l.State == "Dead" || l.State == "") {
			fmt.Fprintf(tw, "  %s\tno such group (never consumed)\n", g)
			continue
		}
		if err := l.Error(); err != nil {
			fmt.Fprintf(tw, "  %s\terror: %v\n", g, err)
			continue
		}
		var total int64
		var rows []kadm.GroupMemberLag
		for _, parts := range l.Lag {
			for _, pl := range parts {
				rows = append(rows, pl)
				if pl.Lag > 0 {
					total += pl.Lag
				}
			}
		}
		fmt.Fprintf(tw, "  %s\t%s, %d members, lag %d\n", g, l.State, len(l.Members), total)
		sort.Slice(rows, func(i, j int) bool {
			if rows[i].Topic != rows[j].Topic {
				return rows[i].Topic < rows[j].Topic
			}
			return rows[i].Partition < rows[j].Partition
		})
		for _, r := range rows {
			member := "-"
			if r.Member != nil {
				member = r.Member.ClientID
			}
			fmt.Fprintf(tw, "    %s/%d\tcommitted %d\tend %d\tlag %d\t%s\n", r.Topic, r.Partition, r.Commit.At, r.End.Offset, r.Lag, member)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !errorsToo {
		return nil
	}
	fmt.Fprintln(w, "\nerror records")
	for _, t := range errTopics {
		es, err := dlq.Read(ctx, cl, seeds, dlq.ReadOptions{ErrorTopic: t, Partition: -1})
		if err != nil {
			fmt.Fprintf(w, "  %s: %v\n", t, err)
			continue
		}
		byClass := map[string]int{}
		for _, e := range es {
			c := "not_a_dead_letter_record"
			if e.Record != nil {
				c = e.Record.Class
			}
			byClass[c]++
		}
		parts := make([]string, 0, len(byClass))
		for _, c := range slices.Sorted(maps.Keys(byClass)) {
			parts = append(parts, fmt.Sprintf("%s=%d", c, byClass[c]))
		}
		detail := "none"
		if len(parts) > 0 {
			detail = strings.Join(parts, " ") + " (kpipe dlq list --topic " + t + ")"
		}
		fmt.Fprintf(w, "  %s: %d  %s\n", t, len(es), detail)
	}
	return nil
}

// statusTable prints the table's version, size and last commit.
func statusTable(ctx context.Context, w io.Writer, location string) error {
	store, err := delta.OpenLocation(location)
	if err != nil {
		return err
	}
	tb, err := delta.Open(ctx, store)
	if err != nil {
		return err
	}
	snap, err := tb.Snapshot(ctx)
	if err != nil {
		return err
	}
	d := delta.Describe(store.Location(), snap)
	fmt.Fprintf(w, "\ntable %s\n  version %d, %d files, %d rows, %d bytes\n", d.Location, d.Version, d.NumFiles, d.NumRows, d.SizeBytes)
	hist, err := tb.History(ctx, 1)
	if err != nil {
		return err
	}
	if len(hist) > 0 {
		c := hist[0]
		fmt.Fprintf(w, "  last commit %s (%s ago), %s by %s\n", c.Timestamp.UTC().Format(time.RFC3339), time.Since(c.Timestamp).Truncate(time.Second), c.Operation, c.EngineInfo)
	}
	return nil
}

// readyz asks a worker's /readyz.
func readyz(ctx context.Context, addr string) (int, string, error) {
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + addr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(url, "/")+"/readyz", nil)
	if err != nil {
		return 0, "", err
	}
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// loadWorkersConfig loads the configuration for what does not depend on
// the environment (worker names, groups, topics): a variable that is not
// set reads as a placeholder URL, so that kpipe status and kpipe dlq do
// not need the ClaimX credentials of the workers.
func loadWorkersConfig(env *Env) (*config.Config, error) {
	e := *env
	e.Getenv = func(name string) (string, bool) {
		if v, ok := env.Getenv(name); ok {
			return v, true
		}
		return "http://unset.invalid", true
	}
	return loadConfig(&e, "")
}
