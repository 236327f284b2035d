package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/kafka"
)

func init() { register(newTopicsCmd) }

func newTopicsCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Manage kpipe's Kafka topics",
	}
	cmd.AddCommand(newTopicsCreateCmd(env), newTopicsListCmd(env))
	return cmd
}

// topicsClient loads the topics file (default <config-dir>/topics.yaml) and
// connects to the cluster of KAFKA_BOOTSTRAP_SERVERS, checked first: what
// "topics create" and "topics list" both start with. A bad file or
// setting is a usage error.
func topicsClient(ctx context.Context, env *Env, file string) ([]kafka.TopicSpec, *kgo.Client, error) {
	if file == "" {
		file = filepath.Join(env.ConfigDir, "topics.yaml")
	}
	specs, err := kafka.LoadTopics(file)
	if err != nil {
		return nil, nil, usage(err)
	}
	kcfg, err := kafka.ConfigFromEnv(env.Getenv)
	if err != nil {
		return nil, nil, usage(err)
	}
	if err := kcfg.Validate(); err != nil {
		return nil, nil, usage(err)
	}
	cl, err := checkedClient(ctx, kcfg, env.Logger)
	if err != nil {
		return nil, nil, err
	}
	return specs, cl, nil
}

func newTopicsCreateCmd(env *Env) *cobra.Command {
	var (
		file           string
		maxReplication int
		timeout        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the topics of topics.yaml with their partitions and retention",
		Long: `Create every topic listed in topics.yaml (default: <config-dir>/topics.yaml)
on the cluster named by KAFKA_BOOTSTRAP_SERVERS. Existing topics keep their
data: they gain partitions if they have fewer and take the listed retention and
cleanup policy. Running it again changes nothing. The replication factor is
capped at the number of brokers (or --max-replication).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			specs, cl, err := topicsClient(ctx, env, file)
			if err != nil {
				return err
			}
			defer cl.Close()
			// A topic is reported as existing only when the brokers listed
			// it; when they cannot be asked, nothing is reported but the
			// error.
			res, err := kafka.EnsureTopicsEach(ctx, cl, specs, maxReplication)
			for i, r := range res {
				s := specs[i]
				if r.State == kafka.TopicFailed {
					fmt.Fprintf(env.Stdout, "%-8s %s: %v\n", r.State, s.Name, r.Err)
					continue
				}
				fmt.Fprintf(env.Stdout, "%-8s %s (partitions %d, retention %s)\n", r.State, s.Name, s.Partitions, time.Duration(s.Retention))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "topics file (default <config-dir>/topics.yaml)")
	f.IntVar(&maxReplication, "max-replication", 0, "highest replication factor to use (0: the number of brokers)")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}
