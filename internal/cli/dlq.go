package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kpipe/internal/dlq"
	"kpipe/internal/kafka"
)

func init() { register(newDLQCmd) }

func newDLQCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Work with the error topics (dead-letter queues)",
	}
	var (
		o       dlq.ReplayOptions
		worker  string
		classes string
		since   string
	)
	replay := &cobra.Command{
		Use:   "replay",
		Short: "Re-inject error-topic records into the topics they came from",
		Long: `Read an error topic and re-inject each record's original message, with its
key, into the topic it was consumed from, once the cause is fixed.

Records whose row was written anyway (a lookup failure with on_error
log_and_continue) are skipped unless --include-written: replaying them would
write their row twice, unless the worker's delta_writer has dedupe (the
shipped iTel worker does), which drops rows the table holds. The consumer
group --group remembers how far replays have got, so running replay again
re-injects only newer records. --class replays some classes and leaves the
records of the others for a later replay (the group <group>.<class> keeps
how far each class has got). A replayed message that fails again is
recorded with attempt + 1. kpipe dlq list shows the records first.

Kafka settings come from KAFKA_BOOTSTRAP_SERVERS and the other KAFKA_*
variables.`,
		Example: `  kpipe dlq replay --worker itel_cabinet_tracking_worker --dry-run
  kpipe dlq replay --worker itel_cabinet_tracking_worker --class schema_conflict,validation
  kpipe dlq replay --topic claimx.enrichment.errors --since 2026-01-10T00:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case worker != "" && o.ErrorTopic != "":
				return usage(errors.New("give --worker or --topic, not both"))
			case worker != "":
				cfg, err := loadConfig(env, "")
				if err != nil {
					return err
				}
				w, err := cfg.Worker(worker)
				if err != nil {
					return usage(err)
				}
				if w.ErrorTopic == "" {
					return usage(fmt.Errorf("worker %s has no error_topic", worker))
				}
				o.ErrorTopic = w.ErrorTopic
			case o.ErrorTopic == "":
				return usage(errors.New("name the error topic: --worker NAME or --topic TOPIC"))
			}
			if classes != "" {
				o.Classes = strings.Split(classes, ",")
			}
			if since != "" {
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					return usage(fmt.Errorf("--since: %w", err))
				}
				o.Since = t
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
			cl, err := checkedClient(cmd.Context(), kcfg, env.Logger)
			if err != nil {
				return err
			}
			defer cl.Close()
			st, err := dlq.Replay(cmd.Context(), cl, seeds, o)
			printReplay(env, o, st)
			return err
		},
	}
	f := replay.Flags()
	f.StringVar(&worker, "worker", "", "replay this worker's error_topic (from workers.yaml)")
	f.StringVar(&o.ErrorTopic, "topic", "", "the error topic to replay (e.g. claimx.enrichment.errors)")
	f.StringVar(&classes, "class", "", "only these error classes, comma-separated (malformed, validation, lookup, schema_conflict, ...); the others stay for a later replay")
	f.StringVar(&since, "since", "", "only records that failed at or after this RFC 3339 time")
	f.StringVar(&o.To, "to", "", "replay into this topic instead of each record's own")
	f.BoolVar(&o.IncludeWritten, "include-written", false, "also replay records whose row was written (written twice unless the writer has dedupe)")
	f.IntVar(&o.Limit, "limit", 0, "replay at most this many records (0: all)")
	f.BoolVar(&o.DryRun, "dry-run", false, "count what would be replayed; produce and commit nothing")
	f.StringVar(&o.Group, "group", "kpipe-dlq-replay", "consumer group that remembers how far replays have got")
	cmd.AddCommand(replay, newDLQListCmd(env), newDLQShowCmd(env))
	return cmd
}

func printReplay(env *Env, o dlq.ReplayOptions, st dlq.Stats) {
	verb := "replayed"
	if o.DryRun {
		verb = "would replay"
	}
	fmt.Fprintf(env.Stdout, "%s: read %d records, %s %d\n", o.ErrorTopic, st.Read, verb, st.Total())
	for _, m := range []struct {
		title  string
		counts map[string]int
	}{{"  " + verb, st.Replayed}, {"  skipped", st.Skipped}} {
		keys := make([]string, 0, len(m.counts))
		for k := range m.counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(env.Stdout, "%s %-16s %d\n", m.title, k, m.counts[k])
		}
	}
	if len(st.Truncated) > 0 {
		// Their originals are gone: say which, so that they can be had
		// from the source.
		fmt.Fprintf(env.Stdout, "  not replayable, original cut to fit the error topic (recover from the source):\n")
		for _, tr := range st.Truncated {
			fmt.Fprintf(env.Stdout, "    %s\n", tr)
		}
	}
}
