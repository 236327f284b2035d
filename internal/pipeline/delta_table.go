package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kpipe/internal/delta"
)

// deltaTable adapts *delta.Table to table. The table is opened lazily, and
// created from its definition when the location has no Delta log, so that
// storage that is down at start-up is retried like any other outage.
type deltaTable struct {
	name  string
	store delta.Storage
	defs  func(name string) (delta.TableDef, error)
	opts  []delta.Option
	hooks delta.Hooks

	commitLatency                        prometheus.Observer
	files, bytes, rows, evolutions, conf prometheus.Counter
	version                              prometheus.Gauge

	mu sync.Mutex
	t  *delta.Table
	// seen is the version of the snapshot last read.
	seen atomic.Int64
	// schema is the schema of the snapshot last read or committed.
	schema atomic.Pointer[delta.StructType]
	// last is the snapshot TxnVersions read last: scanKeys(!fresh) syncs
	// the dedupe state to it instead of listing the log again.
	last atomic.Pointer[delta.Snapshot]
	// own are the data files this writer's Appends added (path → the
	// version that added them) whose rows' keys the DeltaWriter's dedupe
	// set holds (keysAdded) and that scanKeys has not passed yet: reading
	// them back is skipped. added are the last Append's, until keysAdded.
	ownMu   sync.Mutex
	own     map[string]int64
	added   []string
	addedAt int64
}

// keysAdded implements keyScanner: scanKeys need not read the last
// Append's files back. Without it (a flush that failed after its commit)
// they are read.
func (d *deltaTable) keysAdded() {
	d.ownMu.Lock()
	defer d.ownMu.Unlock()
	if d.own == nil {
		d.own = map[string]int64{}
	}
	for _, p := range d.added {
		d.own[p] = d.addedAt
	}
	d.added = nil
}

// TableDefsFromDir returns a Deps.TableDefs that loads
// <configDir>/tables/<name>.yaml.
func TableDefsFromDir(configDir string) func(name string) (delta.TableDef, error) {
	return func(name string) (delta.TableDef, error) {
		return delta.LoadTableDef(filepath.Join(configDir, "tables", name+".yaml"))
	}
}

func openDeltaTable(location, name string, deps Deps) (table, error) {
	open := func(location string) (delta.Storage, error) {
		var opts []delta.StorageOption
		if deps.FileMode != 0 {
			opts = append(opts, delta.WithFileMode(deps.FileMode))
		}
		if deps.DirMode != 0 {
			opts = append(opts, delta.WithDirMode(deps.DirMode))
		}
		return delta.OpenLocationWith(location, opts...)
	}
	if deps.Storage != nil {
		open = deps.Storage
	}
	store, err := open(location)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", name, err)
	}
	m := deps.Metrics
	compactions := m.DeltaCompactions.MustCurryWith(prometheus.Labels{"table": name})
	return &deltaTable{
		name:  name,
		store: store,
		defs:  deps.TableDefs,
		opts: []delta.Option{delta.WithLogger(deps.Logger.With("table", name)), delta.WithAutoCompact(delta.AutoCompact{
			// The table's delta.autoOptimize.autoCompact decides whether
			// it runs; this only counts what it does.
			OnCompact: func(_ delta.OptimizeResult, err error) { compactions.WithLabelValues(compactionResult(err)).Inc() },
		})},
		hooks:         delta.Hooks{AfterDataFiles: deps.AfterDataFiles},
		commitLatency: m.DeltaCommitLatency.WithLabelValues(name),
		files:         m.DeltaFilesWritten.WithLabelValues(name),
		bytes:         m.DeltaBytesWritten.WithLabelValues(name),
		rows:          m.DeltaRowsWritten.WithLabelValues(name),
		evolutions:    m.DeltaSchemaEvolutions.WithLabelValues(name),
		conf:          m.DeltaCommitConflicts.WithLabelValues(name),
		version:       m.DeltaTableVersion.WithLabelValues(name),
	}, nil
}

func (d *deltaTable) table(ctx context.Context) (*delta.Table, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.t != nil {
		return d.t, nil
	}
	t, err := delta.Open(ctx, d.store, d.opts...)
	if errors.Is(err, delta.ErrNotATable) {
		if d.defs == nil {
			return nil, fmt.Errorf("table %s does not exist at %s and no definition is known to create it", d.name, d.store.Location())
		}
		def, derr := d.defs(d.name)
		if derr != nil {
			return nil, fmt.Errorf("table %s: %w", d.name, derr)
		}
		t, err = delta.Create(ctx, d.store, def, d.opts...)
		if errors.Is(err, delta.ErrTableExists) {
			t, err = delta.Open(ctx, d.store, d.opts...) // created concurrently
		}
	}
	if err != nil {
		return nil, err
	}
	// A table kpipe must not write (a feature it does not implement, txn
	// identifiers that expire) stops the worker before it consumes.
	snap, err := t.Snapshot(ctx)
	if err != nil {
		_ = t.Close(ctx)
		return nil, err
	}
	if err := snap.CheckAppend(true); err != nil {
		_ = t.Close(ctx)
		return nil, fmt.Errorf("table %s: %w", d.name, err)
	}
	d.t = t
	d.schema.Store(snap.Schema())
	return t, nil
}

func (d *deltaTable) Schema(ctx context.Context) (*delta.StructType, error) {
	t, err := d.table(ctx)
	if err != nil {
		return nil, err
	}
	if s := d.schema.Load(); s != nil {
		return s, nil
	}
	snap, err := t.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	d.schema.Store(snap.Schema())
	return snap.Schema(), nil
}

func (d *deltaTable) Append(ctx context.Context, rows delta.Rows, txns map[string]int64, ao appendOptions) (int64, []*delta.SchemaError, error) {
	t, err := d.table(ctx)
	if err != nil {
		return 0, nil, err
	}
	// StableMaps: a map in a row is never changed once the row is built
	// (Event: values a lookup put in Fields are shared with its cache and
	// replaced, never mutated; nothing changes an event's fields after the
	// delta_writer), so a cached lookup result is shredded once for all
	// the flushes that carry it.
	opts := delta.AppendOptions{SchemaEvolution: ao.evolve, RejectBadRows: true, StableMaps: true, Casts: ao.casts, Hooks: d.hooks, CommitInfo: ao.commitInfo}
	for id, v := range ao.rewind {
		if opts.RewindTxns == nil {
			opts.RewindTxns = map[string]int64{}
		}
		opts.RewindTxns[id] = v
	}
	if ao.check != nil || ao.beforeCommit != nil {
		// The version the commit is attempted as: after the snapshot the
		// writer last read (TxnVersions, just before).
		next := d.seen.Load() + 1
		opts.BeforeCommit = func(rejected []*delta.SchemaError) error {
			if ao.check != nil {
				if err := ao.check(); err != nil {
					return err
				}
			}
			if ao.beforeCommit != nil {
				return ao.beforeCommit(rejected, next)
			}
			return nil
		}
	}
	for app, v := range txns {
		opts.Txns = append(opts.Txns, delta.Txn{AppID: app, Version: v})
	}
	sort.Slice(opts.Txns, func(i, j int) bool { return opts.Txns[i].AppID < opts.Txns[j].AppID })
	start := time.Now()
	res, err := t.AppendRows(ctx, rows, opts)
	if err != nil {
		var ce *delta.ConflictError
		if errors.As(err, &ce) {
			d.conf.Inc()
		}
		return 0, nil, err
	}
	if res.Schema != nil {
		d.schema.Store(res.Schema)
	}
	if res.Rows == 0 && len(res.Rejected) > 0 {
		return -1, res.Rejected, nil // every row rejected: nothing committed
	}
	d.commitLatency.Observe(time.Since(start).Seconds())
	d.files.Add(float64(res.Files))
	d.bytes.Add(float64(res.Bytes))
	d.rows.Add(float64(res.Rows))
	d.version.Set(float64(res.Version))
	d.ownMu.Lock()
	d.added, d.addedAt = res.Added, res.Version
	d.ownMu.Unlock()
	if res.SchemaChanged {
		d.evolutions.Inc()
	}
	return res.Version, res.Rejected, nil
}

func (d *deltaTable) TxnVersions(ctx context.Context, appIDs []string) (map[string]int64, error) {
	t, err := d.table(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := t.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	d.seen.Store(snap.Version())
	d.schema.Store(snap.Schema())
	d.last.Store(snap)
	out := make(map[string]int64, len(appIDs))
	for _, id := range appIDs {
		if v, ok := snap.TxnVersion(id); ok {
			out[id] = v
		}
	}
	return out, nil
}

func (d *deltaTable) Close(ctx context.Context) error {
	d.mu.Lock()
	t := d.t
	d.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.Close(ctx)
}

// compactionResult is the result label of kpipe_delta_compactions_total.
func compactionResult(err error) string {
	var ce *delta.ConflictError
	switch {
	case err == nil:
		return "committed"
	case errors.As(err, &ce):
		return "gave_way"
	}
	return "failed"
}
