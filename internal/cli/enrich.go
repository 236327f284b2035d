package cli

import (
	"context"

	"github.com/spf13/cobra"

	"kpipe/internal/enrich"
	"kpipe/internal/kafka"
	"kpipe/internal/metrics"
	"kpipe/internal/stack"
)

func init() { register(newEnrichCmd) }

func newEnrichCmd(env *Env) *cobra.Command {
	var o struct {
		metricsAddr string
		enrich      enrich.Options
		gcHeadroom  float64
	}
	cmd := &cobra.Command{
		Use:   "enrich",
		Short: "Run the enrichment worker: claimx.events → ClaimX API → plugins → their topics",
		Long: `Run the enrichment worker. It consumes claimx.events in the group
claimx_enrichment_worker_group, fetches the task-assignment and project rows of
task events through the claimx_api connection, runs every enabled plugin in
priority order, and publishes what they produce in the same Kafka transaction
that commits the consumed offsets: each event is published once. Events that
cannot be parsed or enriched go to claimx.enrichment.errors.

While ClaimX is unavailable (5xx, 429, timeouts, refused connections) the
worker pauses consuming, retries with a growing pause (up to
--pause-backoff-max), reports not ready on /readyz with the reason and resumes
by itself; no event is given up for an outage. An event whose lookup keeps
failing while ClaimX answers other requests goes to claimx.enrichment.errors
after --retry-attempts rounds; a 404 goes there at once.

Kafka comes from KAFKA_BOOTSTRAP_SERVERS and the other KAFKA_* variables ("kpipe
up" runs everything with an embedded broker instead). The transactional id
must be stable across restarts of one worker and unique among running ones
(default: the group name and the host name); it is also the static group
instance id, so a restarted worker gets its partitions back at once.

SIGINT or SIGTERM: the poll in hand is finished and committed, the worker
leaves the group and exits 0. Another process with the same transactional id
(fenced), refused Kafka credentials or any other fatal error: exit non-zero.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stop, _, err := startGCTuning(cmd, env, o.gcHeadroom, env.Logger)
			if err != nil {
				return err
			}
			defer stop()
			return runEnrich(cmd.Context(), env, o.metricsAddr, o.enrich)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve the live page (/), /status.json, /metrics, /healthz and /readyz on this address (host:port); empty: no HTTP")
	f.StringVar(&o.enrich.TransactionalID, "transactional-id", "", "Kafka transactional id (default <group>-<hostname>)")
	f.StringVar(&o.enrich.InstanceID, "instance-id", "", `static group membership id (default: the transactional id; "-": dynamic membership)`)
	f.DurationVar(&o.enrich.SessionTimeout, "session-timeout", enrich.DefaultSessionTimeout, "how long the group waits for a silent member before moving its partitions")
	f.IntVar(&o.enrich.RetryAttempts, "retry-attempts", enrich.DefaultRetryAttempts, "rounds of lookups an event may fail as unavailable while ClaimX answers other requests, before it goes to the error topic")
	f.DurationVar(&o.enrich.PauseBackoffMax, "pause-backoff-max", enrich.DefaultPauseBackoffMax, "longest pause between lookup rounds while ClaimX is unavailable")
	addGCHeadroomFlag(cmd, &o.gcHeadroom)
	f.IntVar(&o.enrich.MaxRecordBytes, "max-record-bytes", enrich.DefaultMaxRecordBytes, "largest record produced (an output over it sends its event to the error topic as too_large; error records are cut to fit); at most the topics' max.message.bytes")
	return cmd
}

func runEnrich(ctx context.Context, env *Env, metricsAddr string, o enrich.Options) error {
	log := env.Logger
	cfg, err := loadConfig(env, "")
	if err != nil {
		return err
	}
	kcfg, err := kafka.ConfigFromEnv(env.Getenv)
	if err == nil {
		err = kcfg.Validate()
	}
	if err != nil {
		return usage(err)
	}
	// Wrong credentials or TLS settings are fatal at once, naming the broker
	// and the mechanism; an unreachable cluster is waited for (not ready
	// meanwhile).
	if err := kafka.Check(ctx, kcfg); err != nil {
		if kafka.IsFatal(err) {
			log.Error("enrich_failed", "error", err)
			return err
		}
		log.Warn("kafka_unreachable_at_start", "error", err)
	}
	reg := metrics.NewRegistry()
	m := metrics.New(reg)
	o.Kafka = kcfg
	w, err := stack.NewEnricher(ctx, cfg, o, m, log)
	if err != nil {
		return stackErr(err)
	}
	// The cause of a non-zero exit (fenced, refused credentials, a record
	// Kafka keeps refusing) is a typed error from enrich, logged at ERROR.
	return runService(ctx, w, runOptions{metricsAddr: metricsAddr, gatherer: reg, ready: w.Ready, status: []metrics.StatusProvider{w}, log: log, failure: "enrich_failed"})
}
