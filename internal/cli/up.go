package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kpipe/internal/config"
	"kpipe/internal/kafka"
	"kpipe/internal/pipeline"
	"kpipe/internal/sim"
	"kpipe/internal/stack"
)

func init() { register(newUpCmd) }

type upOptions struct {
	gcHeadroom  float64
	events      int
	duration    time.Duration
	rate        float64
	seed        int64
	dataDir     string
	localData   string
	noGenerator bool
	kafkaPort   int
	kafka       string
	idPrefix    string
	txnID       string
	apiAddr     string
	metricsAddr string
	faults      string
	worker      string
	waitTimeout time.Duration
	maxLag      int
	cacheSize   int
	// resetOffsets is the tracking worker's --reset-offsets.
	resetOffsets string
	logFile      string
}

// defaultUpPrefix starts the consumer groups and the transactional id of
// kpipe up, so that it never shares them with "kpipe enrich" and "kpipe
// worker" (whose fenced or rebalanced side would otherwise stop).
const defaultUpPrefix = "kpipe-up-"

// upLockFile is the lock file kpipe up holds in its data folder.
const upLockFile = "kpipe-up.lock"

func newUpCmd(env *Env) *cobra.Command {
	o := upOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole pipeline on this machine",
		Long: `Run everything on one machine: an embedded Kafka broker (or the cluster of
--kafka), the ClaimX simulator (API and event generator), the enrichment
worker, the tracking worker, and the Delta table under --data.

Without --events it generates events at --rate until Ctrl-C (or --duration)
and stops cleanly, flushing and committing. With --events N it generates N
events as fast as it can and waits until both workers have committed
everything in Kafka and the table is stable. Then it checks the table by
event id against the simulator's ground truth (this run's events of the
tracked task), prints a summary (with the duplicates the table writer
dropped, kpipe_duplicates_dropped_total) and exits: 0 when the table holds
every tracked event of the run exactly once; 1 naming the missing or
duplicated events otherwise. Rows of earlier runs on the same --data are
kept; an event of this run already there counts once.

The broker listens on 127.0.0.1:9092, or the next free port (--kafka-port 0:
any free port); kcat and other Kafka tools can connect to it. With
--no-generator nothing is generated, so that an outside producer can feed
claimx.events.

Memory and disk are bounded by these settings, not by --events: the
generator waits while a worker has more than --max-lag records left in Kafka
(default 50000), and the enrichment worker caches --cache-size rows of each
kind (default 10000, some 3 KB each). The embedded broker drops, every second, the records of
claimx.events and of the tracking worker's input that every consumer group
with offsets there has committed past, and keeps only the newest 4 MiB of
each partition of the success topic (itel.cabinet.task.tracking.success),
which nothing in kpipe up reads. The error topics are kept whole: kpipe dlq
reads them. A cluster given with --kafka keeps its own retention.

Identity: kpipe up's consumer groups and transactional id start with
--id-prefix (default "kpipe-up-"), so a "kpipe enrich" or "kpipe worker"
on the same cluster is never fenced by it nor shares its partitions. One
kpipe up per data folder: a second one is refused (lock file
<data>/kpipe-up.lock, released by the kernel when the holder dies). With
--kafka, a second kpipe up whose groups already have members on that cluster
is refused too.

On a terminal, a status block (events generated, enriched, triggered and
written, lag, errors by class, table version and files) is redrawn in place
every half second; the plugins' log lines (SPEC's "iTel Cabinet task event
tracked | ...") and warnings are printed above it, the Kafka client's lines
only with --log-level debug. --log-file PATH gets every record in full.
When stdout is not a terminal: a progress line every 5 s, logs on stderr.
Without --events the simulated world keeps producing (it grows when its
events run out) until Ctrl-C or --duration; Ctrl-C at any moment, also while
starting, exits 0, with a summary naming the table and the kpipe query and
kpipe report commands to run on it.

If any worker fails (fenced, authentication lost, storage refused), the
others drain, the error is logged at ERROR and kpipe up exits 1: it never
keeps running half alive. /metrics and /readyz answer until the workers have
drained.

On S3: --data s3://bucket/prefix puts the table on S3
(s3://bucket/prefix/delta/<table>), with credentials, region and endpoint
from the AWS SDK's default chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...,
AWS_ENDPOINT_URL_S3; KPIPE_S3_FORCE_PATH_STYLE=1 for local servers) or the
URL's ?endpoint=&path_style=true&region=. What cannot live on S3, the
embedded broker's data and the lock file, goes to --local-data (default
data/s3/<bucket>/<prefix>). The lock is local: run one kpipe up per S3
location, nothing stops a second machine.`,
		Example: `  kpipe up
  kpipe up --log-file up.log
  kpipe up --kafka 127.0.0.1:9092   # an existing cluster (kpipe broker, or a real one)
  kpipe up --events 5000 --seed 1 --data /tmp/kpipe
  kpipe up --no-generator    # then: kcat -b 127.0.0.1:9092 -t claimx.events -P
  kpipe up --kafka env       # the cluster of KAFKA_BOOTSTRAP_SERVERS and KAFKA_*
  kpipe up --events 20000 --seed 6 --data s3://my-bucket/kpipe`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stop, _, err := startGCTuning(cmd, env, o.gcHeadroom, env.Logger)
			if err != nil {
				return err
			}
			defer stop()
			return runUp(cmd.Context(), env, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.events, "events", 0, "generate this many events, wait until the table holds them all, print a summary and exit")
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	f.Float64Var(&o.rate, "rate", 0, fmt.Sprintf("events per second to generate (default: %d, or as fast as possible with --events)", stack.DefaultRate))
	f.Int64Var(&o.seed, "seed", 1, "seed of the simulated ClaimX world")
	f.StringVar(&o.dataDir, "data", "data", "folder for the Delta table (delta/<table>) and the broker's data (kafka/), created 0750; or s3://bucket/prefix for the table")
	f.StringVar(&o.localData, "local-data", "", "folder for what cannot live on S3 with --data s3://...: the broker's data (kafka/) and the lock (default data/s3/<bucket>/<prefix>; with a local --data: --data)")
	f.BoolVar(&o.noGenerator, "no-generator", false, "generate no events: feed claimx.events from outside")
	f.IntVar(&o.kafkaPort, "kafka-port", kafka.DefaultPort, "port of the embedded broker; the next free one is taken when it is busy; 0: any free port")
	f.StringVar(&o.kafka, "kafka", "", `use this cluster instead of an embedded broker (host:port,...; "env": KAFKA_BOOTSTRAP_SERVERS with the KAFKA_* TLS and SASL settings)`)
	f.StringVar(&o.idPrefix, "id-prefix", defaultUpPrefix, `prefix of the consumer groups and transactional id ("": the same as kpipe enrich and kpipe worker)`)
	f.StringVar(&o.txnID, "transactional-id", "", "the enrichment worker's transactional id (default <id-prefix>claimx_enrichment_worker)")
	f.StringVar(&o.apiAddr, "api-addr", "127.0.0.1:0", "address of the ClaimX simulator's API")
	f.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9464", "address for the live page (/), /status.json, /metrics, /healthz and /readyz (empty: none)")
	f.StringVar(&o.faults, "faults", "", "faults the simulator injects, e.g. latency=20ms,500=0.05 (see kpipe sim --help)")
	f.StringVar(&o.worker, "worker", "itel_cabinet_tracking_worker", "the plugin action worker of workers.yaml to run")
	f.StringVar(&o.resetOffsets, "reset-offsets", "", "where the tracking worker starts a partition whose stored offsets do not fit its log (a table kept from a run whose broker data is gone): earliest or latest (default: stop that partition and say so)")
	f.StringVar(&o.logFile, "log-file", "", "append every log record, the Kafka client's included, to this file (the console shows warnings and the plugins' lines)")
	f.DurationVar(&o.waitTimeout, "wait-timeout", 2*time.Minute, "with --events: give up when neither the table nor what is left in Kafka has changed for this long")
	f.IntVar(&o.cacheSize, "cache-size", stack.DefaultCacheSize, "rows the enrichment worker caches per kind, task assignments and projects (kpipe enrich caches 100000)")
	addGCHeadroomFlag(cmd, &o.gcHeadroom)
	f.IntVar(&o.maxLag, "max-lag", stack.DefaultMaxLag, "the generator waits while a worker has more than this many records left in Kafka (-1: never waits)")
	return cmd
}

// groupSettle is how long kpipe up on a shared cluster waits for the
// members of a dead process to leave its groups. A variable for tests.
var groupSettle = stack.DefaultGroupSettle

// runUp checks the flags, builds the stack (internal/stack), prints where
// its parts are and runs it.
func runUp(ctx context.Context, env *Env, o upOptions) error {
	if o.events < 0 || o.rate < 0 {
		return usage(errors.New("--events and --rate must not be negative"))
	}
	if o.events > 0 && o.noGenerator {
		return usage(errors.New("--events needs the generator: drop --no-generator"))
	}
	if o.kafka != "" && o.kafkaPort != kafka.DefaultPort {
		return usage(errors.New("--kafka and --kafka-port exclude each other"))
	}
	faults, err := sim.ParseFaults(o.faults)
	if err != nil {
		return usage(fmt.Errorf("--faults: %w", err))
	}
	policy, err := pipeline.ParseResetPolicy(o.resetOffsets)
	if err != nil {
		return usage(err)
	}
	kcfg, err := upKafka(env, o)
	if err != nil {
		return err
	}
	localDir, err := upLocalDir(o)
	if err != nil {
		return err
	}
	lock, err := acquireLock(env, localDir, upLockFile, "kpipe up")
	if err != nil {
		return err
	}
	defer lock.release()

	// On a terminal: a status block redrawn in place, log lines above it
	// (upLogger); otherwise plain lines, the logs on stderr.
	var term *liveTerm
	out, console := env.Stdout, env.Stderr
	if isTerminal(env.Stdout) {
		term = newLiveTerm(env.Stdout)
		out, console = term, term
	}
	log, closeLog, err := upLogger(env, console, term != nil, o.logFile)
	if err != nil {
		return err
	}
	defer closeLog()

	s, err := stack.New(ctx, stack.Options{
		LoadConfig: func(getenv func(string) (string, bool)) (*config.Config, error) {
			upEnv := *env
			upEnv.Getenv = func(name string) (string, bool) {
				if v, ok := getenv(name); ok {
					return v, true
				}
				return env.Getenv(name)
			}
			return loadConfig(&upEnv, "")
		},
		ConfigDir:       env.ConfigDir,
		DataDir:         o.dataDir,
		LocalDir:        localDir,
		FileMode:        env.FileMode,
		DirMode:         env.DirMode,
		Worker:          o.worker,
		Kafka:           kcfg,
		KafkaPort:       o.kafkaPort,
		IDPrefix:        o.idPrefix,
		TransactionalID: o.txnID,
		GroupSettle:     groupSettle,
		ResetOffsets:    policy,
		Seed:            o.seed,
		Faults:          faults,
		APIAddr:         o.apiAddr,
		Events:          o.events,
		Rate:            o.rate,
		Duration:        o.duration,
		NoGenerator:     o.noGenerator,
		WaitTimeout:     o.waitTimeout,
		MaxLag:          o.maxLag,
		CacheSize:       o.cacheSize,
		MetricsAddr:     o.metricsAddr,
		Out:             out,
		Logger:          log,
		NoProgress:      term != nil,
	})
	if err != nil {
		if ctx.Err() != nil {
			// Ctrl-C while starting: nothing ran, nothing is lost.
			fmt.Fprintln(out, "kpipe up: stopped while starting (Ctrl-C); nothing was generated")
			return nil
		}
		return stackErr(err)
	}
	in := s.Info()
	brokers := strings.Join(in.Brokers, ",")
	fmt.Fprintf(out, "kpipe up\n  kafka    %s (KAFKA_BOOTSTRAP_SERVERS=%s)\n  claimx   %s (simulator, seed %d)\n  table    %s\n  groups   %s, %s (transactional id %s)\n",
		brokers, brokers, in.APIURL, in.Seed, in.Table, in.EnrichGroup, in.TrackGroup, in.TransactionalID)
	if in.Metrics != nil {
		fmt.Fprintf(out, "  metrics  http://%s/metrics\n", in.Metrics)
	}
	if o.logFile != "" {
		fmt.Fprintf(out, "  log      %s (every record; the console shows warnings and the plugins' lines)\n", o.logFile)
	}
	fmt.Fprintln(out)
	stopStatus := func() {}
	if term != nil {
		sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		start := time.Now()
		go func() { defer close(done); showStatus(sctx, term, s, in.Table, 500*time.Millisecond) }()
		stopStatus = func() {
			stop()
			<-done
			term.SetBlock(statusBlock(s.Snapshot(), time.Since(start), in.Table, true))
			term.Freeze()
		}
	}
	// The stack logs each worker's failure itself, and serves its own
	// metrics endpoint (its address is printed above).
	err = runService(ctx, s, runOptions{log: log})
	stopStatus()
	if err == nil && o.events == 0 {
		upSummary(out, s.Snapshot(), in.Table)
	}
	return err
}

// upKafka returns the cluster of --kafka, nil for the embedded broker.
func upKafka(env *Env, o upOptions) (*kafka.Config, error) {
	if o.kafka == "" {
		return nil, nil
	}
	kcfg, err := kafka.ConfigFromEnv(func(name string) (string, bool) {
		if name == "KAFKA_BOOTSTRAP_SERVERS" && o.kafka != "env" {
			return o.kafka, true
		}
		return env.Getenv(name)
	})
	if err == nil {
		err = kcfg.Validate()
	}
	if err != nil {
		return nil, usage(fmt.Errorf("--kafka: %w", err))
	}
	if kcfg.ClientID == "" {
		kcfg.ClientID = "kpipe-up"
	}
	return &kcfg, nil
}

// stackErr makes the stack's errors caused by the input usage errors.
func stackErr(err error) error {
	if errors.Is(err, stack.ErrInvalid) {
		return usage(err)
	}
	return err
}
