package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/config"
	"kpipe/internal/delta"
	"kpipe/internal/metrics"
	"kpipe/internal/sim"
)

const (
	inputTopic   = "itel.cabinet.task.tracking"
	successTopic = "itel.cabinet.task.tracking.success"
	errorTopic   = "itel.cabinet.task.tracking.errors"
	workerName   = "itel_cabinet_tracking_worker"
	templateID   = 32513
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("KPIPE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// memTable is an in-memory table: txn versions and rows, with fault
// injection. It refuses a txn version that does not move forward, as the
// Delta log's conflict check does for concurrent writers.
type memTable struct {
	mu      sync.Mutex
	schema  *delta.StructType
	rows    []map[string]any
	txns    map[string]int64
	version int64
	down    bool
	// beforeCommit runs after the "data files" are written and the
	// writer's records published, before the commit; an error aborts the
	// Append.
	beforeCommit func() error
	// reject, when set, refuses the rows it returns true for, as the
	// table refuses rows that do not fit its schema.
	reject  func(row map[string]any) bool
	appends int
}

var errStorageDown = fmt.Errorf("storage unavailable (test): %w", syscall.EIO)

func newMemTable() *memTable {
	return &memTable{schema: itelSchema(), txns: map[string]int64{}, version: -1}
}

func (m *memTable) setDown(down bool) {
	m.mu.Lock()
	m.down = down
	m.mu.Unlock()
}

func (m *memTable) Schema(context.Context) (*delta.StructType, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errStorageDown
	}
	return m.schema, nil
}

func (m *memTable) Append(_ context.Context, byCol delta.Rows, txns map[string]int64, opts appendOptions) (int64, []*delta.SchemaError, error) {
	rows := make([]map[string]any, byCol.Len())
	for i := range rows {
		rows[i] = byCol.Map(i)
	}
	if opts.check != nil {
		// Before the lock: the dedupe check reads the rows (scanKeys).
		if err := opts.check(); err != nil {
			return 0, nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return 0, nil, errStorageDown
	}
	var rejected []*delta.SchemaError
	if m.reject != nil {
		var good []map[string]any
		for i, r := range rows {
			if m.reject(r) {
				rejected = append(rejected, &delta.SchemaError{Row: i, Path: "rejected", Reason: "refused by the test"})
				continue
			}
			good = append(good, r)
		}
		rows = good
	}
	if opts.beforeCommit != nil {
		if err := opts.beforeCommit(rejected, m.version+1); err != nil {
			return 0, nil, err
		}
	}
	if m.beforeCommit != nil {
		if err := m.beforeCommit(); err != nil {
			return 0, nil, err
		}
	}
	if len(rows) == 0 {
		return -1, rejected, nil
	}
	for app, v := range txns {
		if _, rw := opts.rewind[app]; rw {
			continue
		}
		if old, ok := m.txns[app]; ok && v <= old {
			return 0, nil, &delta.ConflictError{Version: m.version, Reason: fmt.Sprintf("txn %s at %d, not above %d", app, v, old)}
		}
	}
	for app, v := range txns {
		m.txns[app] = v
	}
	for _, r := range rows {
		m.rows = append(m.rows, maps.Clone(r)) // the writer recycles its row maps
	}
	m.version++
	m.appends++
	return m.version, rejected, nil
}

func (m *memTable) TxnVersions(_ context.Context, ids []string) (map[string]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errStorageDown
	}
	out := map[string]int64{}
	for _, id := range ids {
		if v, ok := m.txns[id]; ok {
			out[id] = v
		}
	}
	return out, nil
}

func (m *memTable) Close(context.Context) error { return nil }

// keysAdded implements keyScanner: memTable's scan reads every row after
// the mark, its own included, which only adds keys the set holds.
func (m *memTable) keysAdded() {}

// scanKeys implements keyScanner; the mark is the number of rows read.
func (m *memTable) scanKeys(_ context.Context, mark any, _ bool, keyCol, timeCol string, from time.Time, fn func([]byte, time.Time)) (any, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errStorageDown
	}
	n, _ := mark.(int)
	for _, r := range m.rows[n:] {
		k, _ := r[keyCol].(string)
		at, ok := r[timeCol].(time.Time)
		if k != "" && ok && !at.Before(from) {
			fn([]byte(k), at)
		}
	}
	return len(m.rows), nil
}

func (m *memTable) snapshot() []map[string]any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.rows)
}

func itelSchema() *delta.StructType {
	f := func(name string, t delta.PrimitiveType, nullable bool) *delta.StructField {
		return &delta.StructField{Name: name, Type: t, Nullable: nullable}
	}
	return &delta.StructType{Fields: []*delta.StructField{
		f("event_id", delta.TypeString, false),
		f("event_type", delta.TypeString, false),
		f("event_timestamp", delta.TypeTimestamp, false),
		f("processed_timestamp", delta.TypeTimestamp, false),
		f("task_id", delta.TypeInteger, false),
		f("assignment_id", delta.TypeInteger, true),
		f("project_id", delta.TypeString, false),
		f("task_status", delta.TypeString, false),
		f("task_name", delta.TypeString, true),
		f("assigned_to_user_id", delta.TypeInteger, true),
		f("assigned_by_user_id", delta.TypeInteger, true),
		f("task_created_at", delta.TypeTimestamp, true),
		f("task_completed_at", delta.TypeTimestamp, true),
		f("tracking_version", delta.TypeString, true),
		f("source", delta.TypeString, true),
		f("year", delta.TypeInteger, true),
		f("month", delta.TypeInteger, true),
		f("day", delta.TypeInteger, true),
	}}
}

// env is a test world: a kfake broker with the worker's topics, the ClaimX
// simulator over real HTTP and the repository's configuration.
type env struct {
	t       testing.TB
	cluster *kfake.Cluster
	sim     *sim.Sim
	srv     *httptest.Server
	cfg     *config.Config
	worker  *config.Worker
	metrics *metrics.Metrics
	prod    *kgo.Client
}

func newEnv(t testing.TB, simOpts sim.Options) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, inputTopic), kfake.SeedTopics(1, successTopic, errorTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := sim.New(simOpts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	vars := map[string]string{"CLAIMX_API_BASE_URL": srv.URL, "CLAIMX_API_TOKEN": sim.DefaultToken}
	cfg, err := config.Load("../../config", config.WithEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }), config.WithHandlers(DefaultRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	var w *config.Worker
	for _, cw := range cfg.Workers {
		if cw.Name == workerName {
			w = cw
		}
	}
	if w == nil {
		t.Fatalf("worker %s not in config", workerName)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(inputTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return &env{t: t, cluster: c, sim: s, srv: srv, cfg: cfg, worker: w, metrics: metrics.New(prometheus.NewRegistry()), prod: prod}
}

// kopts are the worker's Kafka client options.
func (e *env) kopts() []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.FetchMaxWait(100 * time.Millisecond)}
}

// registry is DefaultRegistry with delta_writer writing to tbl.
func registryWith(tbl table, tweak ...func(*DeltaWriterConfig)) *Registry {
	r := NewRegistry()
	r.MustRegister(TypeTransform, transformFactory)
	r.MustRegister(TypeValidation, validationFactory)
	r.MustRegister(TypeLookup, lookupFactory)
	r.MustRegister(TypeDeltaWriter, TypedFactory(deltaWriterDefaults, func(cfg *DeltaWriterConfig, deps Deps) (Handler, error) {
		for _, f := range tweak {
			f(cfg)
		}
		return newDeltaWriter(cfg, tbl, deps), nil
	}))
	return r
}

func (e *env) deps() Deps {
	return Deps{WorkerName: workerName, Connections: e.cfg.Connections, Metrics: e.metrics, Logger: testLogger(e.t)}
}

// trackingPayload is the task_trigger plugin's payload (SPEC.md, with the
// fields kpipe adds) for one manifest entry.
func trackingPayload(e sim.ManifestEntry, created time.Time) []byte {
	task := map[string]any{
		"assignment_id":       e.AssignmentID,
		"task_id":             e.TaskID,
		"project_id":          e.ProjectID,
		"status":              e.Status,
		"assigned_to_user_id": 1000 + e.AssignmentID%97,
		"assigned_by_user_id": 7,
		"created_at":          created.UTC().Format(time.RFC3339Nano),
	}
	if e.PreviousStatus != "" {
		task["previous_status"] = e.PreviousStatus
	}
	if e.Status == "completed" {
		task["completed_at"] = e.At.UTC().Format(time.RFC3339Nano)
	}
	p := map[string]any{
		"trigger_name":  "iTel Cabinet Task Tracking",
		"event_id":      e.EventID,
		"event_type":    e.EventType,
		"project_id":    e.ProjectID,
		"task_id":       e.TaskID,
		"assignment_id": e.AssignmentID,
		"task_name":     "iTel Cabinet Repair Form",
		"task_status":   e.Status,
		"timestamp":     e.At.UTC().Format(time.RFC3339Nano),
		// The tracked values as of the event, as the plugin adds them.
		"previous_status":     task["previous_status"],
		"assigned_to_user_id": task["assigned_to_user_id"],
		"assigned_by_user_id": task["assigned_by_user_id"],
		"task_created_at":     task["created_at"],
		"task_completed_at":   task["completed_at"],
		"task":                task,
		"task_fetched_at":     e.At.UTC().Format(time.RFC3339Nano),
		"project":             map[string]any{"project_id": e.ProjectID, "name": "Project " + e.ProjectID, "status": "open"},
	}
	b, _ := json.Marshal(p)
	return b
}

// entries returns the manifest's events of the iTel template, in order.
func (e *env) entries() []sim.ManifestEntry {
	return e.sim.Manifest().EventsForTemplate(templateID)
}

// produceTracking publishes the tracking payloads of entries, keyed by
// assignment id like the plugin does.
func (e *env) produceTracking(ctx context.Context, entries []sim.ManifestEntry) {
	e.t.Helper()
	m := e.sim.Manifest()
	recs := make([]*kgo.Record, 0, len(entries))
	for _, en := range entries {
		created := m.Assignments[en.AssignmentID][0].At
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(en.AssignmentID)), Value: trackingPayload(en, created)})
	}
	e.produce(ctx, recs...)
}

func (e *env) produce(ctx context.Context, recs ...*kgo.Record) {
	e.t.Helper()
	for len(recs) > 0 {
		n := min(len(recs), 5000)
		if err := e.prod.ProduceSync(ctx, recs[:n]...).FirstErr(); err != nil {
			e.t.Fatal(err)
		}
		recs = recs[n:]
	}
}

// readTopic returns every record of topic (read uncommitted, from the start)
// once at least want are there, or what is there after timeout.
func (e *env) readTopic(ctx context.Context, topic string, want int, timeout time.Duration) []*kgo.Record {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && (want < 0 || len(out) < want) {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		out = append(out, fs.Records()...)
	}
	return out
}

// runWorker starts a worker in the background; stop cancels it and returns
// Run's error.
func runWorker(t testing.TB, ctx context.Context, w *Worker) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			t.Fatal("worker did not stop")
			return nil
		}
	}
}

// waitFor polls cond until it holds or timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sink is where a test worker writes: the in-memory table or a real Delta
// table in a temporary folder.
type sink struct {
	name string
	reg  *Registry
	deps func(Deps) Deps
	rows func() []map[string]any
}

func memSink(tbl *memTable, tweak ...func(*DeltaWriterConfig)) sink {
	return sink{name: "mem", reg: registryWith(tbl, tweak...), deps: func(d Deps) Deps { return d }, rows: tbl.snapshot}
}

// tableDefs loads table definitions from the repository's config/tables.
func tableDefs(name string) (delta.TableDef, error) {
	return delta.LoadTableDef(filepath.Join("..", "..", "config", "tables", name+".yaml"))
}

func deltaSink(t testing.TB, dir string) sink {
	return sink{
		name: "delta",
		reg:  DefaultRegistry(),
		deps: func(d Deps) Deps {
			d.DataDir = dir
			d.TableDefs = tableDefs
			return d
		},
		rows: func() []map[string]any {
			return readDelta(t, filepath.Join(dir, "delta", "itel_cabinet_task_tracking"))
		},
	}
}

// readDelta reads every row of the table at dir (none if it does not exist).
func readDelta(t testing.TB, dir string) []map[string]any {
	t.Helper()
	ctx := context.Background()
	store, err := delta.OpenLocation(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(ctx, store)
	if errors.Is(err, delta.ErrNotATable) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := delta.ReadRows(ctx, store, snap)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func (e *env) newWorker(t testing.TB, s sink, opts ...WorkerOption) *Worker {
	t.Helper()
	w, err := NewWorker(t.Context(), e.worker, e.kopts(), s.reg, s.deps(e.deps()), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

// deltaSinkTweaked is deltaSink with the writer's configuration changed
// (smaller flushes).
func deltaSinkTweaked(t testing.TB, dir string, tweak func(*DeltaWriterConfig)) sink {
	s := deltaSink(t, dir)
	r := NewRegistry()
	r.MustRegister(TypeTransform, transformFactory)
	r.MustRegister(TypeValidation, validationFactory)
	r.MustRegister(TypeLookup, lookupFactory)
	r.MustRegister(TypeDeltaWriter, TypedFactory(func() *DeltaWriterConfig {
		c := deltaWriterDefaults()
		return c
	}, func(cfg *DeltaWriterConfig, deps Deps) (Handler, error) {
		tweak(cfg)
		f := deltaWriterFactory.(*typedFactory[DeltaWriterConfig, *DeltaWriterConfig])
		return f.build(cfg, deps)
	}))
	s.reg = r
	return s
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// createTable creates the tracking table under dir (as the worker's
// --data) from its definition, changed by change when given, and returns
// it with its storage.
func createTable(t testing.TB, dir string, change func(*delta.TableDef)) (*delta.Table, delta.Storage) {
	t.Helper()
	def, err := tableDefs("itel_cabinet_task_tracking")
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(&def)
	}
	store, err := delta.OpenLocation(filepath.Join(dir, "delta", "itel_cabinet_task_tracking"))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(t.Context(), store, def)
	if err != nil {
		t.Fatal(err)
	}
	return tbl, store
}
