package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"kpipe/internal/dedupe"
	"kpipe/internal/delta"
)

// DedupeConfig turns on the delta_writer's deduplication: a row whose key
// the table already holds, with an event time within Window, is dropped
// instead of written again.
//
//	dedupe: {key: event_id, time: event_timestamp, window: 168h}
//
// See docs/architecture.md ("Rows are idempotent by key") for what it
// guarantees and where it does not.
type DedupeConfig struct {
	// Key is the column (of column_mapping) that identifies an event; a
	// string or binary column. Required.
	Key string `yaml:"key"`
	// Time is the timestamp column (of column_mapping) whose value decides
	// whether a row is within the window. Required.
	Time string `yaml:"time"`
	// Window is how much event time the state spans, back from the newest
	// event time the writer knows (never later than now), as a Go
	// duration ("168h"). Required, positive.
	Window time.Duration `yaml:"window"`
}

// validate checks the block against the writer's column_mapping.
func (c *DedupeConfig) validate(mapping map[string]string) []error {
	var errs []error
	for _, f := range []struct{ name, col string }{{"key", c.Key}, {"time", c.Time}} {
		if f.col == "" {
			errs = append(errs, fmt.Errorf("dedupe.%s is required (a column of column_mapping)", f.name))
			continue
		}
		if _, ok := mapping[f.col]; !ok {
			errs = append(errs, fmt.Errorf("dedupe.%s: %q is not a column of column_mapping", f.name, f.col))
		}
	}
	if c.Window <= 0 {
		errs = append(errs, fmt.Errorf("dedupe.window must be a positive duration such as 168h (got %s)", c.Window))
	}
	return errs
}

// CommitInfoDuplicatesDropped is the commitInfo key under which a
// delta_writer commit records how many rows of its flush dedupe dropped
// (only when some were).
const CommitInfoDuplicatesDropped = "kpipe.duplicatesDropped"

// keyScanner is implemented by tables whose committed rows the dedupe
// state can read back: deltaTable, and the tests' memTable.
type keyScanner interface {
	// scanKeys reads the table's latest snapshot (fresh), or the one its
	// last TxnVersions read (!fresh, when there was one), and calls fn with
	// the key and event time of the rows committed after mark (nil: every
	// row) in files that may hold a time at or after from; rows without a
	// key or a time are left out. It returns the mark of the snapshot it
	// read. fn's key is valid only during the call. A table without the key
	// or time column (yet) has no keys.
	scanKeys(ctx context.Context, mark any, fresh bool, keyCol, timeCol string, from time.Time, fn func(key []byte, at time.Time)) (any, error)
	// keysAdded tells the table that the keys of the rows its last Append
	// committed are in the set, so scanKeys may skip what that Append
	// wrote.
	keysAdded()
}

// errDedupeRace is returned by the check before a commit when another
// writer committed one of the batch's keys since the batch was filtered:
// the batch is filtered again and committed anew.
var errDedupeRace = errors.New("another writer committed a key of this batch meanwhile")

// maxDedupeAttempts bounds the filter-and-commit rounds of one Commit that
// lose errDedupeRace; past it the Commit fails as retryable.
const maxDedupeAttempts = 5

// dedupeState is a DeltaWriter's deduplication state: one Set for the
// whole table (an event of one Kafka partition may be in files other
// workers wrote), kept in step with the table. Only Commit uses it, under
// the writer's flushMu.
type dedupeState struct {
	cfg   DedupeConfig
	table string
	scan  keyScanner
	now   func() time.Time
	log   *slog.Logger
	// keyAt and timeAt are the key and time columns' indexes in a row's
	// values (-1: not a column of the row).
	keyAt, timeAt int

	set    *dedupe.Set // nil until the first sync
	mark   any         // what scanKeys returned last: the snapshot synced to
	newest time.Time   // the newest event time held
	// batchNewest is the newest event time of the batch drop filtered
	// last, for recheck.
	batchNewest time.Time
}

// newDedupeState returns the dedupe state of a writer to tbl whose rows
// have the values of rowCols; deps has its defaults.
func newDedupeState(cfg *DedupeConfig, table string, tbl table, rowCols []string, deps Deps) *dedupeState {
	scan, _ := tbl.(keyScanner) // nil: sync fails, naming the table
	return &dedupeState{cfg: *cfg, table: table, scan: scan, now: deps.Now, log: deps.Logger,
		keyAt: slices.Index(rowCols, cfg.Key), timeAt: slices.Index(rowCols, cfg.Time)}
}

// ref is the end of the window: the newest event time known (of the table
// and of batchNewest, the rows about to be written), but never after now,
// so that one event stamped in the future does not expire the rest. It is
// zero while no time is known.
func (d *dedupeState) ref(batchNewest time.Time) time.Time {
	r := d.newest
	if batchNewest.After(r) {
		r = batchNewest
	}
	if now := d.now(); r.After(now) {
		r = now
	}
	return r
}

// sync brings the set up to the table's snapshot (fresh: the latest; else
// the one Commit's TxnVersions read): on first use it builds it from every
// file that may hold a row within the window, later it adds the rows of
// the files committed since the last sync (other writers' commits, and
// this writer's own, which change nothing). Keys older than the window
// are expired.
func (d *dedupeState) sync(ctx context.Context, fresh bool, batchNewest time.Time) error {
	if d.scan == nil {
		return fmt.Errorf("%w: table %s: dedupe is configured but this table cannot read its rows back", ErrFatal, d.table)
	}
	start := time.Now()
	rebuild := d.set == nil
	if rebuild {
		d.set = dedupe.New(d.cfg.Window)
	}
	var from time.Time // zero: no time known yet, every file is read
	if r := d.ref(batchNewest); !r.IsZero() {
		from = r.Add(-d.cfg.Window)
	}
	rows := 0
	mark, err := d.scan.scanKeys(ctx, d.mark, fresh, d.cfg.Key, d.cfg.Time, from, func(key []byte, at time.Time) {
		rows++
		if at.Before(from) {
			return
		}
		d.set.AddBytes(key, at)
		if at.After(d.newest) {
			d.newest = at
		}
	})
	if err != nil {
		if rebuild {
			d.set = nil // a half-built state is not kept
		}
		return storageError("reading the dedupe keys of table "+d.table, err)
	}
	d.mark = mark
	if r := d.ref(batchNewest); !r.IsZero() {
		d.set.Expire(r)
	}
	if rebuild {
		d.log.Info("dedupe_state_built", "table", d.table, "rows_read", rows, "keys", d.set.Len(),
			"bytes", d.set.Bytes(), "window", d.cfg.Window.String(), "took", time.Since(start).Round(time.Millisecond).String())
	}
	return nil
}

// rowKey returns the key and event time of a row, its values by column.
// It reads only what newDedupeState set, so the writer's goroutines call
// it as they build rows.
func (d *dedupeState) rowKey(vals []any) rowKey {
	if d.keyAt < 0 || d.timeAt < 0 {
		return rowKey{}
	}
	var k rowKey
	switch v := vals[d.keyAt].(type) {
	case string:
		k.key = v
	case []byte:
		k.key = string(v)
	default:
		return rowKey{}
	}
	k.at, k.ok = vals[d.timeAt].(time.Time)
	return k
}

// drop syncs the set with the table, then returns the rows to write: those
// whose key the table does not hold and that do not repeat an earlier row
// of rows (the first is kept), and how many it dropped. A row older than
// the window (event time before the newest known minus Window) cannot be
// in the set and is not checked against it.
func (d *dedupeState) drop(ctx context.Context, rows []pendingRow) ([]pendingRow, int, error) {
	if len(rows) == 0 {
		return rows, 0, nil
	}
	var batchNewest time.Time
	for _, p := range rows {
		if p.key.ok && p.key.at.After(batchNewest) {
			batchNewest = p.key.at
		}
	}
	d.batchNewest = batchNewest
	// The snapshot Commit's TxnVersions just read: no second log listing.
	if err := d.sync(ctx, false, batchNewest); err != nil {
		return nil, 0, err
	}
	keep := make([]pendingRow, 0, len(rows))
	inBatch := make(map[string]struct{}, len(rows))
	for _, p := range rows {
		if k := p.key.key; p.key.ok {
			if _, dup := inBatch[k]; dup || d.set.Seen(k) {
				continue
			}
			inBatch[k] = struct{}{}
		}
		keep = append(keep, p)
	}
	return keep, len(rows) - len(keep), nil
}

// recheck is the check right before the commit (delta's BeforeCommit): it
// syncs the set with commits made since drop and returns errDedupeRace if
// one of them holds a key of rows.
func (d *dedupeState) recheck(ctx context.Context, rows []pendingRow) error {
	prev := d.mark
	if err := d.sync(ctx, true, d.batchNewest); err != nil {
		return err
	}
	if d.mark == prev {
		return nil // nothing committed since: the common case
	}
	for _, p := range rows {
		if p.key.ok && d.set.Seen(p.key.key) {
			return errDedupeRace
		}
	}
	return nil
}

// committed adds the keys of rows, just committed, to the set, and tells
// the table so.
func (d *dedupeState) committed(rows []pendingRow) {
	if d.scan != nil {
		defer d.scan.keysAdded()
	}
	for _, p := range rows {
		if k := p.key; k.ok {
			d.set.Add(k.key, k.at)
			if k.at.After(d.newest) {
				d.newest = k.at
			}
		}
	}
}

// scanKeys implements keyScanner: of the latest snapshot (fresh) or the one
// TxnVersions read last, the files delta.AddedFiles names since
// the snapshot mark (a *delta.Snapshot), kept by delta.FilesFrom on the
// time column, read with delta.ReadColumns (the key and time columns
// only).
func (d *deltaTable) scanKeys(ctx context.Context, mark any, fresh bool, keyCol, timeCol string, from time.Time, fn func([]byte, time.Time)) (any, error) {
	var snap *delta.Snapshot
	if !fresh {
		snap = d.last.Load()
	}
	if snap == nil {
		t, err := d.table(ctx)
		if err != nil {
			return nil, err
		}
		if snap, err = t.Snapshot(ctx); err != nil {
			return nil, err
		}
	}
	prev, _ := mark.(*delta.Snapshot)
	if prev != nil && prev.Version() >= snap.Version() {
		return prev, nil // nothing new (a later mark is kept)
	}
	schema := snap.Schema()
	kf, tf := schema.Field(keyCol), schema.Field(timeCol)
	if kf == nil || tf == nil {
		return snap, nil // no rows hold keys yet
	}
	if kf.Type != delta.TypeString && kf.Type != delta.TypeBinary {
		return nil, fmt.Errorf("dedupe.key: column %q is a %s: a key must be a string or binary column", keyCol, kf.Type)
	}
	added := delta.AddedFiles(prev, snap)
	if prev != nil {
		// Incremental: the files this writer added hold keys the set got
		// when they were committed (a rebuild, prev nil, reads them all).
		d.ownMu.Lock()
		added = slices.DeleteFunc(added, func(f delta.AddFile) bool {
			_, ok := d.own[f.Path]
			return ok
		})
		d.ownMu.Unlock()
	}
	files, err := delta.FilesFrom(snap, added, timeCol, from)
	if err != nil {
		return nil, fmt.Errorf("dedupe.time: %w", err)
	}
	err = delta.ReadColumns(ctx, d.store, snap, files, []string{keyCol, timeCol}, func(b *delta.ColumnBatch) error {
		for r := range b.Len() {
			k := b.Bytes(0, r)
			at, ok := b.Time(1, r)
			if k != nil && ok {
				fn(k, at)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	d.ownMu.Lock()
	maps.DeleteFunc(d.own, func(_ string, v int64) bool { return v <= snap.Version() })
	d.ownMu.Unlock()
	return snap, nil
}
