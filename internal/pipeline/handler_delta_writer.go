package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"kpipe/internal/config"
	"kpipe/internal/delta"
	"kpipe/internal/dlq"
)

// DeltaWriterConfig configures the delta_writer handler.
type DeltaWriterConfig struct {
	// TableName names the table (metrics, success records, the table
	// definition used to create it). Required.
	TableName string `yaml:"table_name"`
	// Location is the table's folder or URL. Default: <data>/delta/<table_name>.
	Location string `yaml:"location"`
	// Mode must be append. Default append.
	Mode string `yaml:"mode"`
	// SchemaEvolution lets new fields of struct columns extend the schema
	// (one metaData action in the same commit). Default false.
	SchemaEvolution bool `yaml:"schema_evolution"`
	// ColumnMapping maps table column ← dotted event field path. Required.
	ColumnMapping map[string]string `yaml:"column_mapping"`
	// PartitionBy lists the partition columns the writer fills, each from
	// a part (year, month, day or hour, UTC) of a timestamp column of
	// column_mapping. Default: year, month and day from
	// partition_timestamp. A column the table does not have is left out.
	PartitionBy []PartitionSpec `yaml:"partition_by"`
	// PartitionTimestamp is the column whose UTC date fills the year, month
	// and day partition columns when partition_by is not given; with
	// partition_by it must not be set. Default event_timestamp.
	PartitionTimestamp string `yaml:"partition_timestamp"`
	// FlushRows, FlushBytes and FlushInterval (seconds) bound what is
	// buffered before a commit. Defaults 10000 rows, 64 MiB, 0.5 s: a row
	// is visible in the table well within a second, and the small files
	// of slow streams are merged by auto-compaction.
	FlushRows     int     `yaml:"flush_rows"`
	FlushBytes    int64   `yaml:"flush_bytes"`
	FlushInterval float64 `yaml:"flush_interval"`
	// Casts allow, per column, a conversion between JSON types that the
	// strict default refuses: to_string stores a number or boolean given to
	// a string column as its JSON text, from_string parses a string given
	// to a number or boolean column. Without one, such a value sends its
	// message to the error topic as schema_conflict. Default none.
	Casts map[string]string `yaml:"casts"`
	// Dedupe, when set, drops rows whose key the table already holds
	// within a window of event time (a kpipe addition to SPEC.md's YAML).
	// Default off.
	Dedupe *DedupeConfig `yaml:"dedupe"`
}

func deltaWriterDefaults() *DeltaWriterConfig {
	return &DeltaWriterConfig{
		Mode:          "append",
		FlushRows:     10000,
		FlushBytes:    64 << 20,
		FlushInterval: 0.5,
	}
}

// Validate implements Validator.
func (c *DeltaWriterConfig) Validate() error {
	var errs []error
	if c.TableName == "" {
		errs = append(errs, errors.New("table_name is required"))
	}
	if c.Mode != "append" {
		errs = append(errs, fmt.Errorf("mode %q: only append is supported", c.Mode))
	}
	if len(c.ColumnMapping) == 0 {
		errs = append(errs, errors.New("column_mapping is required"))
	}
	for col, field := range c.ColumnMapping {
		if col == "" || field == "" {
			errs = append(errs, fmt.Errorf("column_mapping: %q: %q is not a column and field", col, field))
		}
	}
	for col, name := range c.Casts {
		if _, err := delta.ParseCast(name); err != nil {
			errs = append(errs, fmt.Errorf("casts.%s: %w", col, err))
		}
		if _, ok := c.ColumnMapping[col]; !ok {
			errs = append(errs, fmt.Errorf("casts.%s: not a column of column_mapping", col))
		}
	}
	errs = append(errs, c.validatePartitions()...)
	if c.Dedupe != nil {
		errs = append(errs, c.Dedupe.validate(c.ColumnMapping)...)
	}
	if c.FlushRows <= 0 || c.FlushBytes <= 0 || c.FlushInterval <= 0 {
		errs = append(errs, errors.New("flush_rows, flush_bytes and flush_interval must be positive"))
	}
	return errors.Join(errs...)
}

// table is what the Delta writer needs of its table: *delta.Table through
// deltaTable, or a test double.
// appendOptions are the options of table.Append.
type appendOptions struct {
	// evolve lets rows add columns and struct fields.
	evolve bool
	// casts allow conversions between JSON types per column.
	casts map[string]delta.Cast
	// beforeCommit, when set, runs after the rows were checked, before the
	// commit, with the rejected rows and the version the commit is
	// attempted as; an error commits nothing.
	beforeCommit func(rejected []*delta.SchemaError, version int64) error
	// check, when set, runs first in the same place, on every attempt;
	// an error commits nothing (the dedupe recheck: errDedupeRace).
	check func() error
	// rewind are txns allowed to go down (an offset reset), with the
	// stored version they expect; commitInfo is recorded in the commit.
	rewind     map[string]int64
	commitInfo map[string]any
}

type table interface {
	// Schema returns the table's schema as of the snapshot it read or
	// committed last (TxnVersions, Append), without reading storage again;
	// before any, it reads the table, creating it first if it does not
	// exist.
	Schema(ctx context.Context) (*delta.StructType, error)
	// Append commits rows and txns (appId → version) as one version and
	// returns it. Rows that do not fit the schema are left out and returned
	// as rejected (a *delta.SchemaError each, Row the row's index), checked
	// in one pass; when every row is rejected nothing is committed and the
	// version is -1.
	Append(ctx context.Context, rows delta.Rows, txns map[string]int64, opts appendOptions) (version int64, rejected []*delta.SchemaError, err error)
	// TxnVersions returns the stored versions of appIDs in the latest
	// snapshot (absent: none).
	TxnVersions(ctx context.Context, appIDs []string) (map[string]int64, error)
	Close(ctx context.Context) error
}

// DeltaWriter turns events into rows of a Delta table. Rows are buffered and
// committed by Flush, together with one txn action per Kafka partition, so
// the table records exactly which offsets it holds.
type DeltaWriter struct {
	cfg     DeltaWriterConfig
	worker  string
	tbl     table
	ids     topicIDs  // the topic ids commits record
	columns []mapping // column ← field, sorted by column
	// partitions are the partition columns derived from timestamps.
	partitions []partitionColumn
	// rowCols are the columns of a row (delta.Rows): the mapped columns,
	// then the partition columns not mapped. colAt[i] is columns[i]'s
	// index in them, partAt[k] partitions[k]'s and fromAt[k] the index of
	// the column partitions[k] derives from (-1: none).
	rowCols               []string
	colAt, partAt, fromAt []int
	flushIv               time.Duration
	plan                  atomic.Pointer[rowPlan]

	mu sync.Mutex
	// schema is what rows are checked against: the table's schema as of
	// the last snapshot the writer read or committed on (refreshSchema).
	schema  *delta.StructType
	buf     []pendingRow
	bytes   int64
	oldest  time.Time
	flushMu sync.Mutex // one Flush or Commit at a time
	// publish makes the records of a commit durable before it; nil: none.
	publish CommitPublisher
	// casts are the columns' conversions, for Append.
	casts map[string]delta.Cast
	// resets are partitions an operator's --reset-offsets moved: until a
	// commit records their new txn version, their floor replaces the
	// stored one. Guarded by mu.
	resets map[partKey]offsetReset
	// dedupe is the deduplication state (nil: off); used under flushMu.
	dedupe *dedupeState
	// retain, when trim is set, are the top-level fields a buffered event
	// keeps once its row is built (RetainFields).
	retain []string
	trim   bool
}

// SetCommitPublisher implements commitPublishing.
func (w *DeltaWriter) SetCommitPublisher(p CommitPublisher) { w.publish = p }

// RetainFields implements fieldRetaining: once an event's row is built,
// the writer keeps only these top-level fields of it (for the worker's
// success records and status counts after the commit), so that a buffered
// row does not also hold its event's decoded map: the event's Fields
// become nil, and its kept values (one slab per batch) hold the names'
// values in this order. Call it before the first batch.
func (w *DeltaWriter) RetainFields(names []string) {
	w.retain = slices.Clone(names)
	w.trim = true
}

// rowPlan is the writer's columns resolved against one table schema, so
// that building a row looks nothing up by name in the schema.
type rowPlan struct {
	schema *delta.StructType
	// fields[i] is the schema field of columns[i], nil when the table does
	// not have the column (yet).
	fields []*delta.StructField
	// parts[i] is the schema field of the writer's partitions[i], nil when
	// the table does not have it.
	parts []*delta.StructField
	// notNull are NOT NULL columns no mapping fills, and notNullAt their
	// indexes in the row (-1: never filled).
	notNull   []string
	notNullAt []int
}

func (w *DeltaWriter) planFor(schema *delta.StructType) *rowPlan {
	if p := w.plan.Load(); p != nil && p.schema == schema {
		return p
	}
	p := &rowPlan{schema: schema, fields: make([]*delta.StructField, len(w.columns))}
	mapped := make(map[string]bool, len(w.columns))
	for i, c := range w.columns {
		p.fields[i] = schema.Field(c.to)
		mapped[c.to] = true
	}
	p.parts = make([]*delta.StructField, len(w.partitions))
	for i, d := range w.partitions {
		p.parts[i] = schema.Field(d.column)
	}
	for _, f := range schema.Fields {
		if !f.Nullable && !mapped[f.Name] {
			p.notNull = append(p.notNull, f.Name)
			p.notNullAt = append(p.notNullAt, slices.Index(w.rowCols, f.Name))
		}
	}
	w.plan.Store(p)
	return p
}

// rowMemo remembers, per column, the last value coerced and its result
// within one batch: consecutive events repeat most values (task id, status,
// user ids, the day), and reusing the result saves converting and boxing
// it again.
type rowMemo struct {
	in, out []any
	// partIn and partOut are, per partition column, the last value derived
	// and its coerced value (nil: none yet).
	partIn  []int
	partOut []any
}

func newRowMemo(n, parts int) *rowMemo {
	return &rowMemo{in: make([]any, n), out: make([]any, n), partIn: make([]int, parts), partOut: make([]any, parts)}
}

// comparableScalar reports whether v is a decoded scalar that == can
// compare (never a map or slice, which would panic).
func comparableScalar(v any) bool {
	switch v.(type) {
	case string, int64, float64, bool:
		return true
	}
	return false
}

type pendingRow struct {
	ev *Event
	// vals are the row's values by column (DeltaWriter.rowCols); nil is
	// null or absent.
	vals []any
	// key is the row's dedupe key, taken while the row is built (and in
	// cache) rather than looked up again in every pass of the flush.
	key rowKey
}

// rowKey is a row's dedupe key and event time; ok is false when either is
// null or dedupe is off (such a row is never deduplicated).
type rowKey struct {
	key string
	at  time.Time
	ok  bool
}

// rowMap is a row's values as a map of its columns, nulls included.
func (w *DeltaWriter) rowMap(vals []any) map[string]any {
	m := make(map[string]any, len(vals))
	for j, v := range vals {
		m[w.rowCols[j]] = v
	}
	return m
}

// DeltaWriterLocation is where the delta_writer handler spec keeps its
// table: its location, or <dataDir>/delta/<table_name> when none is
// configured (Deps.DataDir is dataDir).
func DeltaWriterLocation(spec *config.HandlerSpec, dataDir string) (string, error) {
	cfg := deltaWriterDefaults()
	if err := spec.Decode(cfg); err != nil {
		return "", err
	}
	return cfg.location(dataDir)
}

// location is the table's folder or URL; see DeltaWriterLocation.
func (c *DeltaWriterConfig) location(dataDir string) (string, error) {
	if c.Location != "" {
		return c.Location, nil
	}
	if dataDir == "" {
		return "", fmt.Errorf("table %s: no location configured and no data folder given", c.TableName)
	}
	return delta.JoinLocation(dataDir, "delta", c.TableName), nil
}

var deltaWriterFactory = TypedFactory(deltaWriterDefaults, func(cfg *DeltaWriterConfig, deps Deps) (Handler, error) {
	loc, err := cfg.location(deps.DataDir)
	if err != nil {
		return nil, err
	}
	tbl, err := openDeltaTable(loc, cfg.TableName, deps)
	if err != nil {
		return nil, err
	}
	return newDeltaWriter(cfg, tbl, deps), nil
})

func newDeltaWriter(cfg *DeltaWriterConfig, tbl table, deps Deps) *DeltaWriter {
	deps = deps.withDefaults()
	w := &DeltaWriter{
		cfg:     *cfg,
		worker:  deps.WorkerName,
		tbl:     tbl,
		flushIv: time.Duration(cfg.FlushInterval * float64(time.Second)),
	}
	for col, field := range cfg.ColumnMapping {
		m := newMapping(col, field)
		m.cast, _ = delta.ParseCast(cfg.Casts[col]) // checked by Validate
		if m.cast != delta.CastNone {
			if w.casts == nil {
				w.casts = map[string]delta.Cast{}
			}
			w.casts[col] = m.cast
		}
		w.columns = append(w.columns, m)
	}
	sort.Slice(w.columns, func(i, j int) bool { return w.columns[i].to < w.columns[j].to })
	w.partitions = cfg.partitionColumns()
	at := func(col string) int {
		if j := slices.Index(w.rowCols, col); j >= 0 {
			return j
		}
		w.rowCols = append(w.rowCols, col)
		return len(w.rowCols) - 1
	}
	for _, c := range w.columns {
		w.colAt = append(w.colAt, at(c.to))
	}
	for _, d := range w.partitions {
		w.partAt = append(w.partAt, at(d.column))
	}
	for _, d := range w.partitions {
		w.fromAt = append(w.fromAt, slices.Index(w.rowCols, d.from))
	}
	if cfg.Dedupe != nil {
		w.dedupe = newDedupeState(cfg.Dedupe, cfg.TableName, tbl, w.rowCols, deps)
	}
	return w
}

// AppID is the txn application id of a worker's input partition.
func AppID(worker, topic string, partition int32) string {
	return worker + "-" + topic + "-" + strconv.FormatInt(int64(partition), 10)
}

// Table returns the table name.
func (w *DeltaWriter) Table() string { return w.cfg.TableName }

func (w *DeltaWriter) loadSchema(ctx context.Context) (*delta.StructType, error) {
	w.mu.Lock()
	s := w.schema
	w.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := w.tbl.Schema(ctx)
	if err != nil {
		return nil, storageError("reading the schema of table "+w.cfg.TableName, err)
	}
	w.mu.Lock()
	w.schema = s
	w.mu.Unlock()
	return s, nil
}

// refreshSchema takes the schema of the snapshot the table read or
// committed last, after a call that read or committed one: a column or
// field another writer (or this one, by evolution) added is accepted from
// the next batch on. A failure keeps the schema the writer had.
func (w *DeltaWriter) refreshSchema(ctx context.Context) {
	s, err := w.tbl.Schema(ctx)
	if err != nil || s == nil {
		return
	}
	w.mu.Lock()
	w.schema = s
	w.mu.Unlock()
}

// Handle implements Handler.
func (w *DeltaWriter) Handle(ctx context.Context, ev *Event) ([]*Event, error) {
	res, err := w.HandleBatch(ctx, []*Event{ev})
	if err != nil {
		return nil, err
	}
	return res[0].Events, res[0].Err
}

// HandleBatch implements BatchHandler: it builds and type-checks each row
// and buffers it. A value that does not fit its column fails the event with
// class schema_conflict. Unavailable storage (reading the schema) fails the
// batch.
func (w *DeltaWriter) HandleBatch(ctx context.Context, evs []*Event) ([]Result, error) {
	schema, err := w.loadSchema(ctx)
	if err != nil {
		return nil, err
	}
	plan := w.planFor(schema)
	memo := newRowMemo(len(w.columns), len(w.partitions))
	results := make([]Result, len(evs))
	rows := make([]pendingRow, 0, len(evs))
	// The batch's rows share one allocation of values.
	n := len(w.rowCols)
	slab := make([]any, len(evs)*n)
	// So do the fields the buffered events keep; made even when empty,
	// so that a trimmed event's kept values are never nil.
	var kept []any
	k := len(w.retain)
	if w.trim {
		kept = make([]any, len(evs)*k)
	}
	var size int64
	for i, ev := range evs {
		vals := slab[i*n : (i+1)*n : (i+1)*n]
		if err := w.row(plan, ev, memo, vals); err != nil {
			clear(vals)
			results[i].Err = err
			continue
		}
		p := pendingRow{ev: ev, vals: vals}
		if w.dedupe != nil {
			p.key = w.dedupe.rowKey(vals)
		}
		rows = append(rows, p)
		size += int64(len(ev.Raw)) + 256
		if w.trim {
			ev.kept = keepFields(kept[i*k:(i+1)*k:(i+1)*k], ev.Fields, w.retain)
			ev.Fields = nil
		}
		results[i].Events = evs[i : i+1 : i+1]
	}
	if len(rows) > 0 {
		w.mu.Lock()
		if len(w.buf) == 0 {
			w.oldest = time.Now()
		}
		w.buf = append(w.buf, rows...)
		w.bytes += size
		w.mu.Unlock()
	}
	return results, nil
}

// row builds the table row of ev into vals (by column, rowCols), coerced
// to the column types. A null value of a column the table does not have
// yet (an inferred struct column before its first value, such as the
// lookup result while the API is down) is left out: the column joins the
// schema with its first value.
func (w *DeltaWriter) row(plan *rowPlan, ev *Event, memo *rowMemo, vals []any) error {
	for i := range w.columns {
		c := &w.columns[i]
		v, _ := c.path.get(ev.Fields)
		f := plan.fields[i]
		if f == nil {
			if w.cfg.SchemaEvolution {
				vals[w.colAt[i]] = v
				continue
			}
			return Errorf(dlq.ClassSchemaConflict, c.to, "column %q is not in the table schema", c.to)
		}
		var cv any
		if memo != nil && v != nil && comparableScalar(v) && v == memo.in[i] {
			cv = memo.out[i]
		} else {
			var err error
			cv, err = delta.CoerceColumn(f.Type, v, c.to, c.cast)
			if err != nil {
				return Errorf(dlq.ClassSchemaConflict, c.to, "column %q (%s) ← field %q: %w", c.to, f.Type, c.from, err)
			}
			if memo != nil && comparableScalar(v) {
				memo.in[i], memo.out[i] = v, cv
			}
		}
		if cv == nil && !f.Nullable {
			return Errorf(dlq.ClassSchemaConflict, c.to, "column %q is NOT NULL but field %q is null or absent", c.to, c.from)
		}
		vals[w.colAt[i]] = cv
	}
	if err := w.derivePartitions(plan, vals, memo); err != nil {
		return err
	}
	// Every NOT NULL column must be set: mapped ones were checked above.
	for k, name := range plan.notNull {
		if j := plan.notNullAt[k]; j < 0 || vals[j] == nil {
			return Errorf(dlq.ClassSchemaConflict, name, "column %q is NOT NULL and has no value", name)
		}
	}
	return nil
}

// FlushDue implements Flusher.
func (w *DeltaWriter) FlushDue(now time.Time) (bool, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return false, time.Time{}
	}
	next := w.oldest.Add(w.flushIv)
	return len(w.buf) >= w.cfg.FlushRows || w.bytes >= w.cfg.FlushBytes || !now.Before(next), next
}

// Buffered returns the rows and estimated bytes waiting for a Flush.
func (w *DeltaWriter) Buffered() (rows int, bytes int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.buf), w.bytes
}

// StorageError is a failure of the table's storage: the worker retries it
// with backoff and never sends the events it concerns to the error topic.
type StorageError struct {
	Op  string
	Err error
}

func (e *StorageError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *StorageError) Unwrap() error { return e.Err }

// storageError classifies a failure of the table: a *StorageError, which
// the worker retries, when delta.IsRetryable says the same call may
// succeed later (I/O, network, permissions, a lost race); otherwise an
// error wrapping ErrFatal (an unsupported feature, a corrupt log, txn
// retention), which stops the worker with the cause rather than retry it
// forever.
func storageError(op string, err error) error {
	if delta.IsRetryable(err) || errors.Is(err, context.Canceled) {
		return &StorageError{Op: op, Err: err} // a stop cancels the retry loop
	}
	if errors.Is(err, ErrKilled) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrFatal, op, err)
}

// Flush implements Flusher: Take and Commit. What a failed Flush took is
// put back in front of the buffer, so Flush can be called again.
func (w *DeltaWriter) Flush(ctx context.Context, marks []Mark) (*FlushResult, error) {
	b := w.Take()
	res, err := w.Commit(ctx, b, marks)
	if err != nil {
		w.mu.Lock()
		p := b.(*pendingBatch)
		w.buf = append(p.rows, w.buf...)
		w.bytes += p.bytes
		if len(p.rows) > 0 {
			w.oldest = p.oldest
		}
		w.mu.Unlock()
	}
	return res, err
}

// pendingBatch is what Take took out of the buffer.
type pendingBatch struct {
	rows   []pendingRow
	bytes  int64
	oldest time.Time
}

func (p *pendingBatch) Len() int { return len(p.rows) }

// Take implements AsyncFlusher: it empties the buffer and returns what it
// held.
func (w *DeltaWriter) Take() FlushBatch {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := &pendingBatch{rows: w.buf, bytes: w.bytes, oldest: w.oldest}
	// The next batch will likely be as long: growing the buffer row by row
	// copied it (with write barriers, while the collector runs) a dozen
	// times per flush.
	w.buf, w.bytes = make([]pendingRow, 0, min(len(p.rows), w.cfg.FlushRows)), 0
	return p
}

type partKey struct {
	topic     string
	partition int32
}

// StoredOffsets implements Flusher: the txn versions of topic's partitions.
func (w *DeltaWriter) StoredOffsets(ctx context.Context, topic string, partitions []int32) (map[int32]int64, error) {
	ids := make([]string, len(partitions))
	for i, p := range partitions {
		ids[i] = AppID(w.worker, topic, p)
	}
	vs, err := w.tbl.TxnVersions(ctx, ids)
	if err != nil {
		return nil, storageError("reading the txn versions of table "+w.cfg.TableName, err)
	}
	w.refreshSchema(ctx)
	out := make(map[int32]int64, len(vs))
	for i, p := range partitions {
		if v, ok := vs[ids[i]]; ok {
			out[p] = v
		}
	}
	return out, nil
}

// Discard implements Flusher.
func (w *DeltaWriter) Discard(topic string, partition int32, after int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	kept := w.buf[:0]
	w.bytes = 0
	for _, p := range w.buf {
		if p.ev.Topic == topic && p.ev.Partition == partition && p.ev.Offset > after {
			continue
		}
		kept = append(kept, p)
		w.bytes += int64(len(p.ev.Raw)) + 256
	}
	clear(w.buf[len(kept):])
	w.buf = kept
}

// Close implements Handler. Buffered rows are not written: the worker
// flushes before closing.
func (w *DeltaWriter) Close(ctx context.Context) error { return w.tbl.Close(ctx) }

var (
	_ Handler      = (*DeltaWriter)(nil)
	_ BatchHandler = (*DeltaWriter)(nil)
	_ Flusher      = (*DeltaWriter)(nil)
	_ AsyncFlusher = (*DeltaWriter)(nil)
)
