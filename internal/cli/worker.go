package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"kpipe/internal/kafka"
	"kpipe/internal/metrics"
	"kpipe/internal/pipeline"
)

func init() { register(newWorkerCmd) }

type workerOptions struct {
	dataDir        string
	metricsAddr    string
	resetOffsets   string
	stallTimeout   time.Duration
	instanceID     string
	sessionTimeout time.Duration
	cpuProfile     string
	gcHeadroom     float64
}

func newWorkerCmd(env *Env) *cobra.Command {
	o := workerOptions{}
	cmd := &cobra.Command{
		Use:   "worker NAME",
		Short: "Run one plugin action worker of workers.yaml",
		Long: `Run the plugin action worker NAME from the configuration's workers.yaml
files: consume its input topic in its consumer group, run every message
through its handler chain, write the Delta table and publish success and
error records.

Kafka comes from KAFKA_BOOTSTRAP_SERVERS (with the KAFKA_* TLS and SASL
variables). A table without a configured location lives at
--data/delta/<table_name>; it is created from <config-dir>/tables/<table>.yaml
when absent.

On partition assignment the table's stored offsets are checked against the
partition's log. If they do not fit (the topic was recreated, the broker's
data reset, records expired before they were written), that partition stops
with an error saying so, /readyz fails and kpipe_partition_offset_mismatch
is 1, rather than skipping new records silently. --reset-offsets earliest or
latest tells the worker where to start such a partition instead.

/readyz answers 503 with the reason while Kafka is unreachable, before the
group has assigned partitions, while table storage is down, while a
partition is stopped, and when records wait longer than --stall-timeout
with nothing made durable; it answers 200 "degraded: ..." while ClaimX
lookups fail and rows are written without them.

The first SIGINT or SIGTERM stops cleanly: polling stops, buffered rows are
flushed, offsets committed, and kpipe exits 0. A fatal error (credentials
or authorization refused, instance id taken by another process, a table
kpipe cannot write) exits non-zero with the cause logged at ERROR.`,
		Example: `  KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 kpipe worker itel_cabinet_tracking_worker --data ./data`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stop, _, err := startGCTuning(cmd, env, o.gcHeadroom, env.Logger)
			if err != nil {
				return err
			}
			defer stop()
			return runWorker(cmd.Context(), env, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data", "data", "folder (or s3://bucket/prefix) holding delta/<table> for tables without a configured location")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve the live page (/), /status.json, /metrics, /healthz and /readyz on this address (empty: off)")
	f.StringVar(&o.resetOffsets, "reset-offsets", "", "where to start a partition whose stored offsets do not fit its log: earliest or latest (default: stop that partition)")
	f.DurationVar(&o.stallTimeout, "stall-timeout", pipeline.DefaultStallTimeout, "report not ready when records wait this long with nothing made durable")
	f.StringVar(&o.instanceID, "instance-id", "", "static group member id (a pod name): a restarted worker takes its partitions back at once; unique per running process ($KPIPE_INSTANCE_ID)")
	f.DurationVar(&o.sessionTimeout, "session-timeout", pipeline.DefaultSessionTimeout, "how long the group waits for a worker that stopped heartbeating before moving its partitions")
	f.StringVar(&o.cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run to this file (go tool pprof reads it), for finding where the time goes")
	addGCHeadroomFlag(cmd, &o.gcHeadroom)
	return cmd
}

func runWorker(ctx context.Context, env *Env, name string, o workerOptions) error {
	cfg, err := loadConfig(env, "")
	if err != nil {
		return err
	}
	wcfg, err := cfg.Worker(name)
	if err != nil {
		return usage(err)
	}
	kcfg, err := kafka.ConfigFromEnv(env.Getenv)
	if err != nil {
		return usage(err)
	}
	log := env.Logger.With("worker", name)
	kopts, err := kcfg.Opts(log)
	if err != nil {
		return usage(err)
	}
	// Wrong credentials or TLS settings are fatal at once, naming the broker
	// and the mechanism; an unreachable cluster is waited for (the worker
	// reports not ready meanwhile).
	if err := kafka.Check(ctx, kcfg); err != nil {
		if kafka.IsFatal(err) {
			return err
		}
		log.Warn("kafka_unreachable_at_start", "error", err)
	}
	policy, err := pipeline.ParseResetPolicy(o.resetOffsets)
	if err != nil {
		return usage(err)
	}
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return usage(err)
		}
		defer stop()
	}
	if o.instanceID == "" {
		o.instanceID, _ = env.Getenv("KPIPE_INSTANCE_ID")
	}
	reg := metrics.NewRegistry()
	m := metrics.New(reg)
	wopts := []pipeline.WorkerOption{
		pipeline.WithResetOffsets(policy),
		pipeline.WithStallTimeout(o.stallTimeout),
		pipeline.WithGroupOptions(pipeline.GroupOptions{InstanceID: o.instanceID, SessionTimeout: o.sessionTimeout}),
	}
	w, err := pipeline.NewWorker(ctx, wcfg, kopts, pipeline.DefaultRegistry(), pipeline.Deps{
		WorkerName:  name,
		Connections: cfg.Connections,
		Metrics:     m,
		Logger:      env.Logger, // the worker adds "worker"
		DataDir:     o.dataDir,
		FileMode:    env.FileMode,
		DirMode:     env.DirMode,
		TableDefs:   pipeline.TableDefsFromDir(cfg.Dir),
	}, wopts...)
	if err != nil {
		return usage(err)
	}
	return runService(ctx, w, runOptions{metricsAddr: o.metricsAddr, gatherer: reg, ready: w.Ready, status: []metrics.StatusProvider{w}, log: log, failure: "worker_failed"})
}
