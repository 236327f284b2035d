package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kpipe/internal/dlq"
	"kpipe/internal/kafka"
)

// dlqReadFlags are the filters dlq list and dlq show share.
type dlqReadFlags struct {
	worker, topic string
	classes       string
	since, until  string
	partition     int32
	offset        int64
	limit         int
	timeout       time.Duration
}

func (f *dlqReadFlags) register(cmd *cobra.Command, limit int) {
	fl := cmd.Flags()
	fl.StringVar(&f.worker, "worker", "", "read this worker's error_topic (from workers.yaml)")
	fl.StringVar(&f.topic, "topic", "", "read this error topic (default: claimx.enrichment.errors and every worker's error_topic)")
	fl.StringVar(&f.classes, "class", "", "only these error classes, comma-separated ("+strings.Join(dlq.Classes(), ", ")+")")
	fl.StringVar(&f.since, "since", "", "only records that failed at or after this time (RFC 3339, or a duration ago such as 1h)")
	fl.StringVar(&f.until, "until", "", "only records that failed before this time (RFC 3339, or a duration ago)")
	fl.Int32Var(&f.partition, "partition", -1, "only this partition of the error topic (-1: all)")
	fl.Int64Var(&f.offset, "offset", 0, "start at this offset of the error topic (in every partition read)")
	fl.IntVar(&f.limit, "limit", limit, "at most this many records per topic (0: all)")
	fl.DurationVar(&f.timeout, "timeout", 60*time.Second, "give up after this long")
}

// topics are the error topics to read: --topic, --worker's, or all.
func (f *dlqReadFlags) topics(env *Env) ([]string, error) {
	switch {
	case f.worker != "" && f.topic != "":
		return nil, usage(errors.New("give --worker or --topic, not both"))
	case f.topic != "":
		return []string{f.topic}, nil
	}
	cfg, err := loadWorkersConfig(env)
	if err != nil {
		return nil, err
	}
	if f.worker != "" {
		w, err := cfg.Worker(f.worker)
		if err != nil {
			return nil, usage(err)
		}
		if w.ErrorTopic == "" {
			return nil, usage(fmt.Errorf("worker %s has no error_topic", f.worker))
		}
		return []string{w.ErrorTopic}, nil
	}
	out := []string{kafka.TopicEnrichmentErrors}
	for _, w := range cfg.Workers {
		if w.ErrorTopic != "" && !slices.Contains(out, w.ErrorTopic) {
			out = append(out, w.ErrorTopic)
		}
	}
	return out, nil
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usage(fmt.Errorf("%s %q: want an RFC 3339 time (2026-01-10T00:00:00Z) or a duration ago (1h)", flag, s))
}

// read reads each error topic with the filters, calling fn per topic.
func (f *dlqReadFlags) read(cmd *cobra.Command, env *Env, fn func(topic string, es []dlq.Entry) error) error {
	topics, err := f.topics(env)
	if err != nil {
		return err
	}
	o := dlq.ReadOptions{Partition: f.partition, FromOffset: f.offset, Limit: f.limit}
	if f.limit < 0 || f.offset < 0 {
		return usage(errors.New("--limit and --offset must not be negative"))
	}
	if f.classes != "" {
		for _, c := range strings.Split(f.classes, ",") {
			if !dlq.IsClass(c) {
				return usage(fmt.Errorf("--class %q: want one of %s", c, strings.Join(dlq.Classes(), ", ")))
			}
			o.Classes = append(o.Classes, c)
		}
	}
	now := time.Now()
	if o.Since, err = parseWhen("--since", f.since, now); err != nil {
		return err
	}
	if o.Until, err = parseWhen("--until", f.until, now); err != nil {
		return err
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
	ctx := cmd.Context()
	cl, err := checkedClient(ctx, kcfg, env.Logger)
	if err != nil {
		return err
	}
	defer cl.Close()
	for _, t := range topics {
		o.ErrorTopic = t
		rctx, cancel := context.WithTimeout(ctx, f.timeout)
		es, err := dlq.Read(rctx, cl, seeds, o)
		cancel()
		if err != nil {
			return err
		}
		if err := fn(t, es); err != nil {
			return err
		}
	}
	return nil
}

func newDLQListCmd(env *Env) *cobra.Command {
	var f dlqReadFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the records on the error topics: where, when, class, source, message",
		Long: `List the dead-letter records of the error topics, one a line: the error
topic's partition and offset, when the message failed, its class, the
handler, where the message came from (topic/partition/offset) and the error
message. Nothing is consumed: no consumer group is joined or committed, so
the records stay for kpipe dlq replay.

Without --topic or --worker it reads claimx.enrichment.errors and every
worker's error_topic. Kafka settings come from KAFKA_BOOTSTRAP_SERVERS and
the other KAFKA_* variables.`,
		Example: `  kpipe dlq list
  kpipe dlq list --worker itel_cabinet_tracking_worker --class validation,schema_conflict --since 1h
  kpipe dlq list --topic claimx.enrichment.errors --partition 0 --offset 120 --limit 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.read(cmd, env, func(topic string, es []dlq.Entry) error {
				return printDLQList(env.Stdout, topic, es)
			})
		},
	}
	f.register(cmd, 100)
	return cmd
}

func printDLQList(w io.Writer, topic string, es []dlq.Entry) error {
	fmt.Fprintf(w, "%s: %d records\n", topic, len(es))
	if len(es) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PARTITION/OFFSET\tFAILED_AT\tCLASS\tHANDLER\tSOURCE\tATTEMPT\tMESSAGE")
	for _, e := range es {
		r := e.Record
		if r == nil {
			fmt.Fprintf(tw, "  %d/%d\t%s\t-\t-\t-\t-\tnot a dead-letter record (%d bytes)\n", e.Partition, e.Offset, e.Timestamp.UTC().Format(time.RFC3339), len(e.Raw))
			continue
		}
		msg := r.Message
		if len(msg) > 100 {
			msg = msg[:97] + "..."
		}
		fmt.Fprintf(tw, "  %d/%d\t%s\t%s\t%s\t%s/%d/%d\t%d\t%s\n", e.Partition, e.Offset, r.FailedAt.UTC().Format(time.RFC3339),
			r.Class, r.Handler, r.Topic, r.Partition, r.Offset, r.Attempt, strings.ReplaceAll(msg, "\n", " "))
	}
	return tw.Flush()
}

func newDLQShowCmd(env *Env) *cobra.Command {
	var f dlqReadFlags
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show error records in full: the record as JSON with its original message",
		Long: `Show the dead-letter records of the error topics in full, as indented JSON
(one object per record, with the error topic's partition and offset), the
original message included. The filters are those of kpipe dlq list;
--partition and --offset with --limit 1 show one record. Nothing is consumed.`,
		Example: `  kpipe dlq show --worker itel_cabinet_tracking_worker --partition 0 --offset 42 --limit 1
  kpipe dlq show --topic claimx.enrichment.errors --class not_found --limit 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.read(cmd, env, func(topic string, es []dlq.Entry) error {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				for _, e := range es {
					v := map[string]any{"error_topic": topic, "error_partition": e.Partition, "error_offset": e.Offset}
					if e.Record != nil {
						v["record"] = e.Record
					} else {
						v["raw"] = string(e.Raw)
					}
					if err := enc.Encode(v); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	f.register(cmd, 10)
	return cmd
}
