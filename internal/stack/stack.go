// Package stack is kpipe's whole local system, the one "kpipe up" runs: a
// Kafka broker (embedded, or a cluster given), the ClaimX simulator (its
// API and its event generator), the enrichment worker, a plugin action
// worker writing its Delta table, and the metrics endpoint. It generates
// events, shows progress, checks the table by event id against the
// simulator's ground truth once nothing is left in Kafka, and reports
// errors by kind and the duplicates the table writer dropped. It also builds the enrichment worker
// from the configuration for "kpipe enrich" (NewEnricher).
//
// A Stack is built by New, run once by Run and released by Close, which
// stops everything New started, in reverse order, whether Run ran or not:
//
//	s, err := stack.New(ctx, stack.Options{LoadConfig: load, ConfigDir: "config", DataDir: "data", Worker: "itel_cabinet_tracking_worker", Out: os.Stdout, Logger: log})
//	if err != nil {
//		return err
//	}
//	defer s.Close(context.WithoutCancel(ctx))
//	return s.Run(ctx) // until ctx ends, then the workers drain
package stack

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
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// ErrInvalid is wrapped by the errors of New and NewEnricher that the
// configuration or the options cause: nothing runs, fix the input. The CLI
// exits with its usage code for them.
var ErrInvalid = errors.New("invalid configuration or options")

// invalidError marks err as caused by the input; its message is err's.
type invalidError struct{ err error }

func (e *invalidError) Error() string        { return e.err.Error() }
func (e *invalidError) Unwrap() error        { return e.err }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(err error) error { return &invalidError{err} }

// DefaultGroupSettle is Options.GroupSettle's default: the workers' session
// timeouts, plus a margin.
const DefaultGroupSettle = 12 * time.Second

// DefaultCacheSize is Options.CacheSize's default: the rows the enrichment
// worker caches per kind (task assignments, projects), each some 3 KB
// decoded. kpipe enrich caches up to enrich.DefaultCacheSize (100,000, some
// 600 MB when both are full); one process running the whole stack keeps
// fewer. The simulated world's events reuse a task within a few thousand
// events, so most lookups still hit.
const DefaultCacheSize = 10_000

// DefaultRate is the generator's rate, in events per second, when neither
// Options.Rate nor Options.Events is set.
const DefaultRate = 200

// Options configure a Stack; kpipe up's flags of the same names set them.
type Options struct {
	// LoadConfig loads the configuration. getenv answers
	// CLAIMX_API_BASE_URL and CLAIMX_API_TOKEN with the simulator's, so
	// that the claimx_api connection points at it, and reports every other
	// name unset: LoadConfig looks those up itself. Required.
	LoadConfig func(getenv func(string) (string, bool)) (*config.Config, error)
	// ConfigDir holds topics.yaml and tables/. Required.
	ConfigDir string
	// DataDir holds the broker's data (kafka/) and the tables without a
	// configured location (delta/<table>). Required. It may be an s3://
	// URL (see delta.OpenLocation): then the tables are there and the
	// broker's data in LocalDir.
	DataDir string
	// LocalDir holds what cannot live on an object store: the embedded
	// broker's data (kafka/). Default DataDir; required when DataDir is a
	// URL and the broker is embedded.
	LocalDir string
	// FileMode and DirMode are the permissions of the files and folders
	// the stack creates (0: the defaults, 0640 and 0750).
	FileMode, DirMode os.FileMode
	// Worker names the plugin action worker of workers.yaml to run.
	// Required.
	Worker string

	// Kafka, when set, is the cluster to use (checked by New); nil starts
	// an embedded broker on KafkaPort (the next free port when it is busy;
	// 0: any free port).
	Kafka     *kafka.Config
	KafkaPort int
	// IDPrefix starts the consumer groups and the transactional id, so
	// that they are the stack's own. TransactionalID is the enrichment
	// worker's (default IDPrefix + enrich.DefaultName).
	IDPrefix        string
	TransactionalID string
	// GroupSettle is how long New waits, with Kafka set, for the members of
	// a dead process to leave the groups before it counts them taken (0:
	// ask once). Default: none; DefaultGroupSettle is what kpipe up uses.
	GroupSettle time.Duration
	// ResetOffsets is the tracking worker's reset policy.
	ResetOffsets pipeline.ResetPolicy

	// Seed makes the simulated world; Faults are injected from the start;
	// APIAddr is where its API listens (default 127.0.0.1:0).
	Seed    int64
	Faults  sim.Faults
	APIAddr string
	// Events > 0: Run generates that many events as fast as it can, waits
	// until both workers have nothing left in Kafka and the table is
	// stable, checks by event id that it holds every tracked one of them
	// exactly once, and returns.
	// Otherwise Run generates Rate events per second (default DefaultRate)
	// until its context ends or Duration passes; NoGenerator generates
	// none.
	Events      int
	Rate        float64
	Duration    time.Duration
	NoGenerator bool
	// WaitTimeout: with Events, Run gives up when neither the table nor
	// what is left in Kafka has changed for this long.
	WaitTimeout time.Duration
	// CacheSize bounds the rows the enrichment worker caches per kind (0:
	// DefaultCacheSize).
	CacheSize int
	// MaxLag bounds how far the generator runs ahead of the workers: every
	// 1000 events it waits while a worker's group has more than MaxLag
	// records left of its input topic (0: DefaultMaxLag; negative: it never
	// waits). With Events, a wait in which nothing moves for WaitTimeout
	// fails the run.
	MaxLag int
	// MetricsAddr serves /metrics, /healthz and /readyz until the workers
	// have drained (empty: none; a busy address is logged, not fatal).
	MetricsAddr string

	// Out gets Run's progress and summary; Logger the logs. Out is checked
	// for a terminal (one rewritten progress line).
	Out    io.Writer
	Logger *slog.Logger
	// NoProgress: Run prints no progress lines, the caller shows Snapshot
	// itself (kpipe up's status block on a terminal).
	NoProgress bool
}

// Info says where the parts of a Stack are: what kpipe up prints.
type Info struct {
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// APIURL is the simulator's API; Seed its world's seed.
	APIURL string
	Seed   int64
	// Table is the worker's Delta table location.
	Table string
	// EnrichGroup and TrackGroup are the workers' consumer groups;
	// TransactionalID is the enrichment worker's.
	EnrichGroup, TrackGroup, TransactionalID string
	// Metrics is the metrics endpoint's address, nil when none serves.
	Metrics net.Addr
}

// Stack is the whole local system. Run it once; Close it always.
type Stack struct {
	o       Options
	log     *slog.Logger
	out     io.Writer // o.Out, locked: progress and results come from several goroutines
	info    Info
	world   *sim.Sim
	reg     *prometheus.Registry
	admin   *kgo.Client
	pub     *kafka.Publisher // the generator's, to claimx.events
	tracker *pipeline.Worker
	enrich  *Enricher
	// trackName is the tracking worker's name in logs and errors.
	trackName string
	// seeds are the cluster's client options, for the readers a --events
	// run checks with; lagOf the workers' groups and topics, errTopics
	// their error topics.
	seeds     []kgo.Opt
	lagOf     []groupTopic
	errTopics []string
	// broker is the embedded broker (nil with Options.Kafka); trim drops
	// from it what the workers are done with; pace is the generator's
	// sink, holding it back while the workers lag behind.
	broker *kafka.Embedded
	trim   *trimmer
	pace   *pacer

	// closers release what New opened, in opening order; Close runs them
	// backwards.
	closers  []func(context.Context) error
	ran      atomic.Bool
	closeMu  sync.Once
	closeErr error
}

// New starts the simulator's API, the broker (or checks the cluster),
// creates the topics and builds both workers and the metrics endpoint;
// nothing is generated or consumed until Run. On an error what was started
// is stopped again. Errors caused by the configuration or the options wrap
// ErrInvalid.
func New(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.LoadConfig == nil {
		return nil, invalid(errors.New("stack: Options.LoadConfig is required"))
	}
	if o.APIAddr == "" {
		o.APIAddr = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.LocalDir == "" {
		if o.Kafka == nil && delta.IsObjectStoreLocation(o.DataDir) {
			return nil, invalid(fmt.Errorf("stack: DataDir %s is not a folder: Options.LocalDir must say where the broker's data go", o.DataDir))
		}
		o.LocalDir = o.DataDir
	}
	s := &Stack{o: o, log: o.Logger, out: &lockedWriter{w: o.Out}}
	defer func() {
		if err != nil {
			_ = s.Close(context.WithoutCancel(ctx))
		}
	}()

	// The simulator comes first: the configuration's connection points at it.
	token := "sim-" + fmt.Sprint(time.Now().UnixNano())
	s.world = sim.New(sim.Options{Seed: o.Seed, Events: max(o.Events, 5000), Token: token, Faults: o.Faults})
	if err := s.serveAPI(); err != nil {
		return nil, err
	}
	cfg, err := o.LoadConfig(func(name string) (string, bool) {
		switch name {
		case "CLAIMX_API_BASE_URL":
			return s.info.APIURL, true
		case "CLAIMX_API_TOKEN":
			return token, true
		}
		return "", false
	})
	if err != nil {
		return nil, err
	}
	wcfg, err := cfg.Worker(o.Worker)
	if err != nil {
		return nil, invalid(err)
	}
	topics, err := kafka.LoadTopics(filepath.Join(o.ConfigDir, "topics.yaml"))
	if err != nil {
		return nil, invalid(err)
	}
	kcfg, maxReplication, err := s.startKafka(ctx)
	if err != nil {
		return nil, err
	}

	// Identities of their own: the tracking worker's group and the
	// enrichment worker's group and transactional id.
	tcfg := *wcfg
	tcfg.ConsumerGroup = o.IDPrefix + wcfg.ConsumerGroup
	eopts := enrich.Options{Kafka: kcfg, Group: o.IDPrefix + enrich.DefaultGroup, TransactionalID: o.TransactionalID, CacheSize: o.CacheSize}
	if eopts.CacheSize <= 0 {
		eopts.CacheSize = DefaultCacheSize
	}
	if eopts.TransactionalID == "" {
		eopts.TransactionalID = o.IDPrefix + enrich.DefaultName
	}
	s.info.EnrichGroup, s.info.TrackGroup, s.info.TransactionalID = eopts.Group, tcfg.ConsumerGroup, eopts.TransactionalID

	s.reg = metrics.NewRegistry()
	m := metrics.New(s.reg)
	if s.admin, err = kafka.NewClient(kcfg, s.log); err != nil {
		return nil, err
	}
	s.onClose(func(context.Context) error { s.admin.Close(); return nil })
	s.pub = kafka.NewPublisher(s.admin, kafka.TopicEvents)
	if o.Kafka != nil {
		// The embedded broker is ours (its folder is locked); a shared
		// cluster may already run another stack with these groups.
		if err := groupsFree(ctx, s.admin, o.GroupSettle, kcfg.Brokers, eopts.Group, tcfg.ConsumerGroup); err != nil {
			return nil, err
		}
	}
	if s.broker != nil && tcfg.SuccessTopic != "" {
		// Nothing in kpipe up reads the success topic: the embedded
		// broker keeps its newest records only.
		topics = keepNewest(topics, DefaultKeepBytes, tcfg.SuccessTopic)
	}
	if _, err := kafka.EnsureTopics(ctx, s.admin, topics, maxReplication); err != nil {
		return nil, fmt.Errorf("creating topics: %w", err)
	}
	if s.info.Table, err = tableLocation(&tcfg, o.DataDir); err != nil {
		return nil, err
	}
	kopts, err := kcfg.Opts(s.log)
	if err != nil {
		return nil, err
	}
	s.trackName = wcfg.Name
	s.seeds = kopts
	s.lagOf = []groupTopic{{eopts.Group, kafka.TopicEvents}, {tcfg.ConsumerGroup, tcfg.InputTopic}}
	s.pace = &pacer{adm: kadm.NewClient(s.admin), gts: s.lagOf, max: int64(o.MaxLag), publish: s.pub.Publish, log: s.log}
	if o.MaxLag == 0 {
		s.pace.max = DefaultMaxLag
	}
	if o.Events > 0 {
		s.pace.timeout = o.WaitTimeout
	}
	if s.broker != nil {
		s.trim = &trimmer{adm: kadm.NewClient(s.admin), broker: s.broker, gts: s.lagOf, log: s.log}
	}
	s.errTopics = []string{kafka.TopicEnrichmentErrors}
	if tcfg.ErrorTopic != "" {
		s.errTopics = append(s.errTopics, tcfg.ErrorTopic)
	}
	s.tracker, err = pipeline.NewWorker(ctx, &tcfg, kopts, pipeline.DefaultRegistry(), pipeline.Deps{
		WorkerName:  wcfg.Name,
		Connections: cfg.Connections,
		Metrics:     m,
		Logger:      s.log,
		DataDir:     o.DataDir,
		FileMode:    o.FileMode,
		DirMode:     o.DirMode,
		TableDefs:   pipeline.TableDefsFromDir(o.ConfigDir),
	}, pipeline.WithResetOffsets(o.ResetOffsets))
	if err != nil {
		return nil, err
	}
	s.onClose(s.tracker.Close)
	if s.enrich, err = NewEnricher(ctx, cfg, eopts, m, s.log); err != nil {
		return nil, err
	}
	s.onClose(s.enrich.Close)
	s.serveMetrics(ctx)
	return s, nil
}

// onClose adds a release step to Close.
func (s *Stack) onClose(f func(context.Context) error) { s.closers = append(s.closers, f) }

// serveAPI serves the simulator's API on o.APIAddr until Close. It stops
// last: the workers' drain may still ask it.
func (s *Stack) serveAPI() error {
	ln, err := net.Listen("tcp", s.o.APIAddr)
	if err != nil {
		return invalid(fmt.Errorf("--api-addr: %w", err))
	}
	s.info.APIURL = "http://" + ln.Addr().String()
	s.info.Seed = s.o.Seed
	srv := &http.Server{Handler: s.world, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.onClose(func(ctx context.Context) error {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		<-served
		return nil
	})
	return nil
}

// startKafka starts the embedded broker, or checks the cluster of
// o.Kafka. maxReplication caps the topics' replication factor (0: none).
func (s *Stack) startKafka(ctx context.Context) (kcfg kafka.Config, maxReplication int, err error) {
	if s.o.Kafka != nil {
		kcfg = *s.o.Kafka
		if err := kafka.Check(ctx, kcfg); err != nil {
			return kcfg, 0, err
		}
		s.info.Brokers = kcfg.Brokers
		return kcfg, 0, nil
	}
	port := s.o.KafkaPort
	if port != 0 && !kafka.PortFree(kafka.DefaultHost, port) {
		if port, err = kafka.FreePort(kafka.DefaultHost, s.o.KafkaPort+1, 100); err != nil {
			return kcfg, 0, fmt.Errorf("finding a port for the embedded broker: %w", err)
		}
	}
	broker, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{Port: port, DataDir: filepath.Join(s.o.LocalDir, "kafka"), DirMode: s.o.DirMode,
		SegmentBytes: embeddedSegmentBytes, Logger: s.log})
	if err != nil {
		return kcfg, 0, err
	}
	s.onClose(func(context.Context) error { broker.Close(); return nil })
	s.broker = broker
	s.info.Brokers = broker.Addrs()
	return kafka.Config{Brokers: broker.Addrs(), ClientID: "kpipe-up"}, 1, nil
}

// serveMetrics serves the metrics endpoint, when asked, until Close: it
// answers until the workers have drained.
func (s *Stack) serveMetrics(ctx context.Context) {
	if s.o.MetricsAddr == "" {
		return
	}
	srv := metrics.NewServer(s.o.MetricsAddr, s.reg, func(ctx context.Context) error {
		return errors.Join(s.enrich.Ready(ctx), s.tracker.Ready(ctx))
	}, s.log)
	srv.AddStatus(metrics.StatusFunc(s.status), s.enrich, s.tracker)
	if err := srv.Start(); err != nil {
		// A busy metrics port must not stop a local run.
		s.log.Warn("metrics_server_not_started", "err", err)
		return
	}
	s.info.Metrics = srv.Addr()
	ctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Run(ctx); err != nil {
			s.log.Warn("metrics_server_failed", "err", err)
		}
	}()
	s.onClose(func(context.Context) error { stop(); <-served; return nil })
}

// Info says where the stack's parts are.
func (s *Stack) Info() Info { return s.info }

// Run runs the workers and the generator until ctx ends, Duration passes,
// the Events are verified, or a worker fails or stops by itself; then the
// workers drain (flush the table, commit offsets) and Run prints the error
// breakdown and the last progress line. A worker's failure, logged at
// ERROR, is what Run returns first; then a failed generation or
// verification. Run may be called once.
func (s *Stack) Run(ctx context.Context) error {
	if s.ran.Swap(true) {
		return errors.New("stack: Run called twice")
	}
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	if s.o.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(runCtx, s.o.Duration)
		defer cancel()
	}
	// Workers stop only when told to, after the run, so they drain.
	workersCtx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	ws := &supervisor{log: s.log, stopRun: stopRun, stopping: workersCtx}
	ws.start("enrichment worker", s.enrich.Run)
	ws.start("tracking worker "+s.trackName, s.tracker.Run)

	pub := s.pub
	prog := newProgress(s.out, s.o.Out, s.reg, pub.Published)
	progDone := make(chan struct{})
	if s.o.NoProgress {
		close(progDone)
	} else {
		go func() { prog.run(workersCtx); close(progDone) }()
	}
	trimDone := make(chan struct{})
	if s.trim != nil {
		go func() { s.trim.run(workersCtx); close(trimDone) }()
	} else {
		close(trimDone)
	}
	sink := s.pace.sink
	if s.pace.max < 0 {
		sink = pub.Publish
	}

	var runErr error
	switch {
	case s.o.Events > 0:
		runErr = s.generateAndVerify(runCtx, pub, sink)
	case !s.o.NoGenerator:
		rate := s.o.Rate
		if rate == 0 {
			rate = DefaultRate
		}
		// Forever: the world grows when its events run out, so that
		// kpipe up produces until Ctrl-C or --duration.
		err := s.world.Generate(runCtx, sim.GenerateOptions{Rate: rate, Forever: true}, sink)
		if err != nil && runCtx.Err() == nil {
			runErr = fmt.Errorf("generating events: %w", err)
		}
		<-runCtx.Done()
	default:
		<-runCtx.Done()
	}

	// Stop: workers drain and return; the metrics and API servers stop
	// after them, in Close.
	fmt.Fprintln(s.out, "\nstopping: flushing the table and committing offsets")
	stopWorkers()
	workerErr := ws.wait()
	<-progDone
	<-trimDone
	if s.trim != nil {
		// The workers' last commits are in: drop what they cover.
		if _, err := s.trim.trim(context.WithoutCancel(ctx)); err != nil {
			s.log.Warn("embedded_broker_trim_failed", "err", err)
		}
	}
	s.printErrors()
	if n, ok := metricSum(s.reg, DuplicatesDroppedMetric); ok && s.o.Events == 0 {
		fmt.Fprintf(s.out, "duplicates dropped: %.0f (%s)\n", n, DuplicatesDroppedMetric)
	}
	if !s.o.NoProgress {
		prog.print(true)
	}
	if workerErr != nil {
		// A worker's failure is the cause; what it cut short is not.
		return workerErr
	}
	return runErr
}

// Close stops everything New started, the last started first: the metrics
// endpoint, the workers' resources, the Kafka clients, the broker and the
// simulator's API. Call it after Run has returned, or instead of Run; it is
// idempotent.
func (s *Stack) Close(ctx context.Context) error {
	s.closeMu.Do(func() {
		var errs []error
		for i := len(s.closers) - 1; i >= 0; i-- {
			if err := s.closers[i](ctx); err != nil {
				errs = append(errs, err)
			}
		}
		s.closers = nil
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// tableLocation is where the worker's delta_writer keeps its table.
func tableLocation(w *config.Worker, dataDir string) (string, error) {
	for _, h := range w.EnrichmentHandlers {
		if h.Type == pipeline.TypeDeltaWriter {
			return pipeline.DeltaWriterLocation(h, dataDir)
		}
	}
	return "", fmt.Errorf("worker %s has no delta_writer handler", w.Name)
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
