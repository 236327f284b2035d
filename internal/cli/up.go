package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/config"
	"kpipe/internal/delta"
	"kpipe/internal/enrich"
	"kpipe/internal/kafka"
	"kpipe/internal/metrics"
	"kpipe/internal/pipeline"
	"kpipe/internal/sim"
)

func init() { register(newUpCmd) }

type upOptions struct {
	events      int
	duration    time.Duration
	rate        float64
	seed        int64
	dataDir     string
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
	// resetOffsets is the tracking worker's --reset-offsets.
	resetOffsets string
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
events as fast as it can, waits until the table holds every tracked event,
checks the table against the simulator's ground truth, prints a summary and
exits: 0 when the table holds exactly the expected rows.

The broker listens on 127.0.0.1:9092, or the next free port (--kafka-port 0:
any free port); kcat and other Kafka tools can connect to it. With
--no-generator nothing is generated, so that an outside producer can feed
claimx.events.

Identity: kpipe up's consumer groups and transactional id start with
--id-prefix (default "kpipe-up-"), so a "kpipe enrich" or "kpipe worker"
on the same cluster is never fenced by it nor shares its partitions. One
kpipe up per data folder: a second one is refused (lock file
<data>/kpipe-up.lock, released by the kernel when the holder dies). With
--kafka, a second kpipe up whose groups already have members on that cluster
is refused too.

If any worker fails (fenced, authentication lost, storage refused), the
others drain, the error is logged at ERROR and kpipe up exits 1: it never
keeps running half alive. /metrics and /readyz answer until the workers have
drained.`,
		Example: `  kpipe up
  kpipe up --events 5000 --seed 1 --data /tmp/kpipe
  kpipe up --no-generator    # then: kcat -b 127.0.0.1:9092 -t claimx.events -P
  kpipe up --kafka env       # the cluster of KAFKA_BOOTSTRAP_SERVERS and KAFKA_*`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUp(cmd.Context(), env, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.events, "events", 0, "generate this many events, wait until the table holds them all, print a summary and exit")
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	f.Float64Var(&o.rate, "rate", 0, "events per second to generate (default: 200, or as fast as possible with --events)")
	f.Int64Var(&o.seed, "seed", 1, "seed of the simulated ClaimX world")
	f.StringVar(&o.dataDir, "data", "data", "folder for the Delta table (delta/<table>) and the broker's data (kafka/); created 0750")
	f.BoolVar(&o.noGenerator, "no-generator", false, "generate no events: feed claimx.events from outside")
	f.IntVar(&o.kafkaPort, "kafka-port", kafka.DefaultPort, "port of the embedded broker; the next free one is taken when it is busy; 0: any free port")
	f.StringVar(&o.kafka, "kafka", "", `use this cluster instead of an embedded broker (host:port,...; "env": KAFKA_BOOTSTRAP_SERVERS with the KAFKA_* TLS and SASL settings)`)
	f.StringVar(&o.idPrefix, "id-prefix", defaultUpPrefix, `prefix of the consumer groups and transactional id ("": the same as kpipe enrich and kpipe worker)`)
	f.StringVar(&o.txnID, "transactional-id", "", "the enrichment worker's transactional id (default <id-prefix>claimx_enrichment_worker)")
	f.StringVar(&o.apiAddr, "api-addr", "127.0.0.1:0", "address of the ClaimX simulator's API")
	f.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9464", "address for /metrics, /healthz and /readyz (empty: none)")
	f.StringVar(&o.faults, "faults", "", "faults the simulator injects, e.g. latency=20ms,500=0.05 (see kpipe sim --help)")
	f.StringVar(&o.worker, "worker", "itel_cabinet_tracking_worker", "the plugin action worker of workers.yaml to run")
	f.StringVar(&o.resetOffsets, "reset-offsets", "", "where the tracking worker starts a partition whose stored offsets do not fit its log (a table kept from a run whose broker data is gone): earliest or latest (default: stop that partition and say so)")
	f.DurationVar(&o.waitTimeout, "wait-timeout", 2*time.Minute, "with --events: give up when the table has not grown for this long")
	return cmd
}

func runUp(ctx context.Context, env *Env, o upOptions) (err error) {
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
	log := env.Logger
	// The progress line and the rest of the output come from different
	// goroutines: one lock keeps their lines whole.
	out := &lockedWriter{w: env.Stdout}
	lock, err := acquireLock(o.dataDir, upLockFile, "kpipe up")
	if err != nil {
		return err
	}
	defer lock.release()

	// The simulator comes first: the configuration's connection points at it.
	token := "sim-" + fmt.Sprint(time.Now().UnixNano())
	world := sim.New(sim.Options{Seed: o.seed, Events: max(o.events, 5000), Token: token, Faults: faults})
	upEnv := *env
	var apiURL string
	upEnv.Getenv = func(name string) (string, bool) {
		switch name {
		case "CLAIMX_API_BASE_URL":
			return apiURL, true
		case "CLAIMX_API_TOKEN":
			return token, true
		}
		return env.Getenv(name)
	}
	apiLn, err := net.Listen("tcp", o.apiAddr)
	if err != nil {
		return usage(fmt.Errorf("--api-addr: %w", err))
	}
	apiURL = "http://" + apiLn.Addr().String()
	apiSrv := &http.Server{Handler: world, ReadHeaderTimeout: 10 * time.Second}
	apiServed := make(chan error, 1)
	go func() { apiServed <- apiSrv.Serve(apiLn) }()
	// The API stops last: the workers' drain may still ask it.
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := apiSrv.Shutdown(sctx); serr != nil {
			apiSrv.Close()
		}
		<-apiServed
	}()

	cfg, err := loadConfig(&upEnv, "")
	if err != nil {
		return err
	}
	wcfg, err := cfg.Worker(o.worker)
	if err != nil {
		return usage(err)
	}
	topics, err := kafka.LoadTopics(filepath.Join(env.ConfigDir, "topics.yaml"))
	if err != nil {
		return usage(err)
	}

	kcfg, maxReplication, closeBroker, err := upKafka(ctx, env, o)
	if err != nil {
		return err
	}
	defer closeBroker()
	brokers := strings.Join(kcfg.Brokers, ",")

	// Identities of their own: the tracking worker's group and the
	// enrichment worker's group and transactional id.
	tcfg := *wcfg
	tcfg.ConsumerGroup = o.idPrefix + wcfg.ConsumerGroup
	eopts := enrich.Options{Kafka: kcfg, Group: o.idPrefix + enrich.DefaultGroup, TransactionalID: o.txnID}
	if eopts.TransactionalID == "" {
		eopts.TransactionalID = o.idPrefix + enrich.DefaultName
	}

	reg := metrics.NewRegistry()
	m := metrics.New(reg)
	admin, err := kafka.NewClient(kcfg, log)
	if err != nil {
		return err
	}
	defer admin.Close()
	if o.kafka != "" {
		// The embedded broker is ours (its folder is locked); a shared
		// cluster may already run another kpipe up with these groups.
		if err := groupsFree(ctx, admin, brokers, eopts.Group, tcfg.ConsumerGroup); err != nil {
			return err
		}
	}
	if _, err := kafka.EnsureTopics(ctx, admin, topics, maxReplication); err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}

	tablePath, err := tableLocation(&tcfg, o.dataDir)
	if err != nil {
		return err
	}
	kopts, err := kcfg.Opts(log)
	if err != nil {
		return err
	}
	policy, err := pipeline.ParseResetPolicy(o.resetOffsets)
	if err != nil {
		return usage(err)
	}
	tracker, err := pipeline.NewWorker(ctx, &tcfg, kopts, pipeline.DefaultRegistry(), pipeline.Deps{
		WorkerName:  wcfg.Name,
		Connections: cfg.Connections,
		Metrics:     m,
		Logger:      log,
		DataDir:     o.dataDir,
		TableDefs:   pipeline.TableDefsFromDir(env.ConfigDir),
	}, pipeline.WithResetOffsets(policy))
	if err != nil {
		return err
	}
	enricher, closeEnricher, err := newEnricher(ctx, cfg, eopts, m, log)
	if err != nil {
		return err
	}
	defer closeEnricher(context.WithoutCancel(ctx))

	fmt.Fprintf(out, "kpipe up\n  kafka    %s (KAFKA_BOOTSTRAP_SERVERS=%s)\n  claimx   %s (simulator, seed %d)\n  table    %s\n  groups   %s, %s (transactional id %s)\n",
		brokers, brokers, apiURL, o.seed, tablePath, eopts.Group, tcfg.ConsumerGroup, eopts.TransactionalID)

	// The metrics server answers until the workers have drained.
	if o.metricsAddr != "" {
		srv := metrics.NewServer(o.metricsAddr, reg, func(ctx context.Context) error {
			return errors.Join(enricher.Ready(ctx), tracker.Ready(ctx))
		}, log)
		if err := srv.Start(); err != nil {
			// A busy metrics port must not stop a local run.
			log.Warn("metrics_server_not_started", "err", err)
		} else {
			fmt.Fprintf(out, "  metrics  http://%s/metrics\n", srv.Addr())
			mctx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
			served := make(chan struct{})
			go func() {
				defer close(served)
				if err := srv.Run(mctx); err != nil {
					log.Warn("metrics_server_failed", "err", err)
				}
			}()
			defer func() { stopMetrics(); <-served }()
		}
	}
	fmt.Fprintln(out)

	// The run ends at Ctrl-C, --duration, the end of --events, or the first
	// worker that fails or stops by itself.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	if o.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(runCtx, o.duration)
		defer cancel()
	}
	// Workers stop only when told to, after the run, so they drain.
	workersCtx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	ws := &upWorkers{log: log, stopRun: stopRun, stopping: workersCtx}
	ws.start("enrichment worker", enricher.Run)
	ws.start("tracking worker "+wcfg.Name, tracker.Run)

	pub := kafka.NewPublisher(admin, kafka.TopicEvents)
	prog := newProgress(out, env.Stdout, reg, pub.Published)
	progDone := make(chan struct{})
	go func() { prog.run(workersCtx); close(progDone) }()

	var runErr error
	switch {
	case o.events > 0:
		runErr = generateAndVerify(runCtx, out, o, world, pub, tablePath)
	case !o.noGenerator:
		rate := o.rate
		if rate == 0 {
			rate = 200
		}
		err := world.Generate(runCtx, sim.GenerateOptions{Rate: rate}, pub.Publish)
		if err != nil && runCtx.Err() == nil {
			runErr = fmt.Errorf("generating events: %w", err)
		}
		<-runCtx.Done()
	default:
		<-runCtx.Done()
	}

	// Stop: workers drain (flush the table, commit offsets) and return;
	// the metrics and API servers stop after them (deferred).
	fmt.Fprintln(out, "\nstopping: flushing the table and committing offsets")
	stopWorkers()
	workerErr := ws.wait()
	<-progDone
	if b := errorBreakdown(reg); b != "" {
		fmt.Fprintf(out, "errors by kind: %s (the records are on the error topics; see kpipe dlq replay --help)\n", b)
	}
	prog.print(true)
	if workerErr != nil {
		// A worker's failure is the cause; what it cut short is not.
		return workerErr
	}
	return runErr
}

// upKafka returns the cluster kpipe up uses: the embedded broker (its close
// function stops it) or the cluster of --kafka, checked. maxReplication caps
// the topics' replication factor.
func upKafka(ctx context.Context, env *Env, o upOptions) (kcfg kafka.Config, maxReplication int, closeBroker func(), err error) {
	if o.kafka != "" {
		kcfg, err = kafka.ConfigFromEnv(func(name string) (string, bool) {
			if name == "KAFKA_BOOTSTRAP_SERVERS" && o.kafka != "env" {
				return o.kafka, true
			}
			return env.Getenv(name)
		})
		if err == nil {
			err = kcfg.Validate()
		}
		if err != nil {
			return kcfg, 0, nil, usage(fmt.Errorf("--kafka: %w", err))
		}
		if kcfg.ClientID == "" {
			kcfg.ClientID = "kpipe-up"
		}
		if err := kafka.Check(ctx, kcfg); err != nil {
			return kcfg, 0, nil, err
		}
		return kcfg, 0, func() {}, nil
	}
	port := o.kafkaPort
	if port != 0 && !kafka.PortFree(kafka.DefaultHost, port) {
		if port, err = kafka.FreePort(kafka.DefaultHost, o.kafkaPort+1, 100); err != nil {
			return kcfg, 0, nil, fmt.Errorf("finding a port for the embedded broker: %w", err)
		}
	}
	broker, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{Port: port, DataDir: filepath.Join(o.dataDir, "kafka"), Logger: env.Logger})
	if err != nil {
		return kcfg, 0, nil, err
	}
	return kafka.Config{Brokers: broker.Addrs(), ClientID: "kpipe-up"}, 1, broker.Close, nil
}

// upWorkers runs kpipe up's workers. A worker that fails, or returns while
// not told to stop, ends the run (stopRun) with its error, logged at ERROR.
type upWorkers struct {
	log      *slog.Logger
	stopRun  context.CancelCauseFunc
	stopping context.Context // done once the workers are told to stop
	wg       sync.WaitGroup
	mu       sync.Mutex
	errs     []error
}

func (u *upWorkers) start(name string, run func(context.Context) error) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		err := run(u.stopping)
		if err == nil && u.stopping.Err() == nil {
			err = errors.New("stopped by itself")
		}
		if err == nil || (u.stopping.Err() != nil && errors.Is(err, context.Canceled)) {
			return
		}
		err = fmt.Errorf("%s: %w", name, err)
		u.log.Error("worker_failed", "worker", name, "err", err)
		u.mu.Lock()
		u.errs = append(u.errs, err)
		u.mu.Unlock()
		u.stopRun(err)
	}()
}

// wait waits for every worker and returns their failures, joined.
func (u *upWorkers) wait() error {
	u.wg.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	return errors.Join(u.errs...)
}

// groupsFree fails with an *InUseError when one of the consumer groups has
// members on the cluster: another kpipe up (or a worker given the same
// group) is running there. Members of a process that just died stay until
// their session times out, so a group keeps being asked for a while before
// it counts as taken.
func groupsFree(ctx context.Context, cl *kgo.Client, brokers string, groups ...string) error {
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(groupSettle)
	for {
		described, err := adm.DescribeGroups(ctx, groups...)
		if err != nil {
			return fmt.Errorf("describing consumer groups %v: %w", groups, err)
		}
		var busy []string
		for _, g := range groups {
			d, ok := described[g]
			if !ok || d.Err != nil || len(d.Members) == 0 {
				continue
			}
			var who []string
			for _, mb := range d.Members {
				who = append(who, mb.ClientID+"@"+strings.TrimPrefix(mb.ClientHost, "/"))
			}
			sort.Strings(who)
			busy = append(busy, fmt.Sprintf("%s (members %s)", g, strings.Join(who, ", ")))
		}
		if len(busy) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return &InUseError{
				What: "consumer group " + strings.Join(busy, " and ") + " on " + brokers,
				By:   "another running process (another kpipe up?)",
				Hint: "stop it, or give this one its own identity with --id-prefix",
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// groupSettle is how long groupsFree waits for the members of a dead
// process to time out: the workers' session timeouts, plus a margin. A
// variable for tests.
var groupSettle = 12 * time.Second

// tableLocation is where the worker's delta_writer keeps its table.
func tableLocation(w *config.Worker, dataDir string) (string, error) {
	for _, h := range w.EnrichmentHandlers {
		if h.Type != pipeline.TypeDeltaWriter {
			continue
		}
		if loc, _, ok := h.Field("location"); ok && loc != "" {
			return loc, nil
		}
		name, _, _ := h.Field("table_name")
		return filepath.Join(dataDir, "delta", name), nil
	}
	return "", fmt.Errorf("worker %s has no delta_writer handler", w.Name)
}

// generateAndVerify produces o.events events, waits until the table holds
// every tracked event of them, and checks it against the simulator's ground
// truth.
func generateAndVerify(ctx context.Context, out io.Writer, o upOptions, world *sim.Sim, pub *kafka.Publisher, tablePath string) error {
	start := time.Now()
	// A table kept from earlier runs (the same --data) holds their rows:
	// only what this run adds is checked.
	before, err := tableRows(ctx, tablePath)
	if err != nil && !errors.Is(err, delta.ErrNotATable) {
		return err
	}
	if len(before) > 0 {
		fmt.Fprintf(out, "the table already holds %d rows of earlier runs; checking only what this run adds\n", len(before))
	}
	if err := world.Generate(ctx, sim.GenerateOptions{Rate: o.rate, Limit: o.events}, pub.Publish); err != nil {
		return fmt.Errorf("generating events: %w", err)
	}
	if err := pub.Flush(ctx); err != nil {
		return err
	}
	want := expectedEvents(world, o.events, sim.TemplateITelCabinet)
	fmt.Fprintf(out, "generated %d events in %s; waiting for the table to hold the %d events of task %d\n",
		o.events, time.Since(start).Round(time.Millisecond), len(want), sim.TemplateITelCabinet)

	var (
		rows      []map[string]any
		lastCount = -1
		lastGrow  = time.Now()
	)
	for {
		var err error
		rows, err = tableRows(ctx, tablePath)
		if err != nil && !errors.Is(err, delta.ErrNotATable) {
			return err
		}
		rows = rowsAdded(before, rows)
		if len(rows) >= len(want) {
			break
		}
		if len(rows) != lastCount {
			lastCount, lastGrow = len(rows), time.Now()
		} else if time.Since(lastGrow) > o.waitTimeout {
			return fmt.Errorf("the table has held %d of %d expected rows for %s: see the logs above and the error topics", len(rows), len(want), o.waitTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return reportTable(out, tablePath, rows, want, time.Since(start))
}

// rowsAdded returns the rows of after that before did not hold: the
// table is append-only, so they are the rows past before's count of each
// event id.
func rowsAdded(before, after []map[string]any) []map[string]any {
	if len(before) == 0 {
		return after
	}
	held := map[any]int{}
	for _, r := range before {
		held[r["event_id"]]++
	}
	var added []map[string]any
	for _, r := range after {
		if id := r["event_id"]; held[id] > 0 {
			held[id]--
			continue
		}
		added = append(added, r)
	}
	return added
}

// expectedEvents returns the ids of the events of template among the first
// n events of the world.
func expectedEvents(world *sim.Sim, n int, template int64) map[string]bool {
	first := map[string]bool{}
	for i, e := range world.Events() {
		if i >= n {
			break
		}
		first[e.EventID] = true
	}
	want := map[string]bool{}
	for _, e := range world.Manifest().EventsForTemplate(template) {
		if first[e.EventID] {
			want[e.EventID] = true
		}
	}
	return want
}

// tableRows reads every row of the table at path.
func tableRows(ctx context.Context, path string) ([]map[string]any, error) {
	store, err := delta.OpenLocation(path)
	if err != nil {
		return nil, err
	}
	t, err := delta.Open(ctx, store)
	if err != nil {
		return nil, err
	}
	snap, err := t.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return delta.ReadRows(ctx, store, snap)
}

// reportTable prints the summary of a --events run and fails unless the
// table holds exactly the wanted events, each once.
func reportTable(w io.Writer, tablePath string, rows []map[string]any, want map[string]bool, took time.Duration) error {
	seen := map[string]int{}
	var unexpected []string
	for _, r := range rows {
		id, _ := r["event_id"].(string)
		seen[id]++
		if !want[id] {
			unexpected = append(unexpected, id)
		}
	}
	var missing, dups []string
	for id := range want {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id, n := range seen {
		if n > 1 {
			dups = append(dups, id)
		}
	}
	fmt.Fprintf(w, "\ntable %s\n  rows      %d (expected %d)\n  missing   %d\n  duplicate %d\n  unexpected %d\n  took      %s\n",
		tablePath, len(rows), len(want), len(missing), len(dups), len(unexpected), took.Round(time.Millisecond))
	fmt.Fprintf(w, "\nquery it:\n  kpipe query --table %s \"SELECT task_status, count(*) FROM itel_cabinet_task_tracking GROUP BY 1\"\n", tablePath)
	if len(missing)+len(dups)+len(unexpected) > 0 {
		return fmt.Errorf("the table does not match the simulator's ground truth: %d missing, %d duplicated, %d unexpected", len(missing), len(dups), len(unexpected))
	}
	fmt.Fprintln(w, "\nOK: the table holds every tracked event exactly once")
	return nil
}

// progress prints what the pipeline has done: one rewritten line on a
// terminal, a line every few seconds otherwise.
type progress struct {
	w         io.Writer
	g         prometheus.Gatherer
	generated func() int64
	tty       bool
	last      string
}

// newProgress prints to w; term is the stream w ends up on, checked for a
// terminal.
func newProgress(w, term io.Writer, g prometheus.Gatherer, generated func() int64) *progress {
	tty := false
	if f, ok := term.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, g: g, generated: generated, tty: tty}
}

func (p *progress) run(ctx context.Context) {
	every := 5 * time.Second
	if p.tty {
		every = 500 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.print(false)
		}
	}
}

func (p *progress) print(final bool) {
	s := sumMetrics(p.g)
	line := fmt.Sprintf("generated %d  enriched %.0f  triggered %.0f  written %.0f  lag %.0f  errors %.0f",
		p.generated(), s["kpipe_enrich_events_consumed_total"], s["itel_plugin_events_triggered_total"],
		s["itel_worker_delta_writes_total"], s["kpipe_consumer_lag"],
		s["kpipe_enrich_events_failed_total"]+s["itel_worker_messages_failed_total"])
	if line == p.last && !final {
		return
	}
	p.last = line
	if p.tty && !final {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		return
	}
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, line)
}

// errorBreakdown lists the failures by kind: the enrichment worker's by
// reason, the workers' by class; "" when there were none.
func errorBreakdown(g prometheus.Gatherer) string {
	mfs, err := g.Gather()
	if err != nil {
		return ""
	}
	var parts []string
	for _, mf := range mfs {
		var label string
		switch mf.GetName() {
		case "kpipe_enrich_events_failed_total":
			label = "reason"
		case "kpipe_worker_errors_total":
			label = "class"
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v > 0 {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == label {
						parts = append(parts, fmt.Sprintf("%s=%.0f", lp.GetValue(), v))
					}
				}
			}
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// sumMetrics sums every series of each metric family, by name.
func sumMetrics(g prometheus.Gatherer) map[string]float64 {
	out := map[string]float64{}
	mfs, err := g.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				out[mf.GetName()] += m.Counter.GetValue()
			case m.Gauge != nil:
				out[mf.GetName()] += m.Gauge.GetValue()
			}
		}
	}
	return out
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
