// Package query runs SQL over the current snapshot of a Delta table with
// DuckDB.
//
// DuckDB's delta extension cannot be installed here, so the snapshot comes
// from kpipe's own internal/delta: Open lists the snapshot's active Parquet
// files and creates a view, named after the table folder, that reads exactly
// those files with read_parquet, in the Delta schema's column order and
// types, partition columns taken from the log's partition values:
//
//	db, err := query.Open(ctx, "data/delta/itel_cabinet_task_tracking")
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	err = db.Print(ctx, w, "SELECT task_status, count(*) FROM itel_cabinet_task_tracking GROUP BY 1", query.FormatTable)
//
// Dialect: DuckDB's, plus a Spark-compatible two-argument DATEDIFF(end,
// start) = whole days from start's UTC date to end's (see datediffMacro).
// The session time zone is UTC, so TIMESTAMP WITH TIME ZONE values print and
// truncate to dates in UTC, as the table's partitions do.
package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/duckdb/duckdb-go/v2"

	"kpipe/internal/delta"
)

// NoTableError is returned by Open when the path holds no Delta table.
type NoTableError struct {
	Path string
	Err  error
}

func (e *NoTableError) Error() string {
	return fmt.Sprintf("no Delta table at %s: run `kpipe up` or `kpipe table create`", e.Path)
}

func (e *NoTableError) Unwrap() error { return e.Err }

// Option configures Open.
type Option func(*options)

type options struct {
	view     string
	cacheDir string
}

// WithView names the view over the table; the default is the base name of
// the table folder.
func WithView(name string) Option { return func(o *options) { o.view = name } }

// DB is a DuckDB session holding a view over one Delta snapshot. It uses a
// single connection: it is safe for concurrent use, but statements run one
// at a time.
type DB struct {
	db      *sql.DB
	conn    *sql.Conn
	view    string
	version int64
	files   int
	cache   CacheStats
}

// sessionSetup runs on the connection before the view is created.
var sessionSetup = []string{
	// Delta timestamps are UTC instants; partitions are UTC dates.
	"SET TimeZone = 'UTC'",
	// No network: never try to download an extension.
	"SET autoinstall_known_extensions = false",
	// The view's read_parquet is bound again by every statement; keep the
	// footers instead of re-reading thousands of files.
	"SET parquet_metadata_cache = true",
	datediffMacro,
}

// datediffMacro makes SPEC.md's Spark-style DATEDIFF(end, start) run as
// written. DuckDB's own datediff takes (part, start, end); a macro in the
// main schema shadows the built-in by name, so it is overloaded: the
// two-argument form is Spark's (days between the UTC dates, end minus
// start), the three-argument form forwards to the built-in date_diff.
const datediffMacro = `CREATE OR REPLACE MACRO datediff(enddate, startdate) AS
	date_diff('day', CAST(startdate AS DATE), CAST(enddate AS DATE)),
	(part, startdate, enddate) AS system.main.date_diff(part, startdate, enddate)`

// Open opens the Delta table at tablePath (a folder, file:// URL or
// s3:// URL), reads its latest snapshot and creates the view over it in a
// fresh in-memory DuckDB. A table on S3 is read through a local cache of
// the snapshot's files (WithCacheDir). A path without a Delta log fails
// with *NoTableError.
func Open(ctx context.Context, tablePath string, opts ...Option) (*DB, error) {
	o := options{}
	for _, fn := range opts {
		fn(&o)
	}
	store, err := delta.OpenLocation(tablePath)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", tablePath, err)
	}
	tbl, err := delta.Open(ctx, store)
	if err != nil {
		if errors.Is(err, delta.ErrNotATable) {
			return nil, &NoTableError{Path: tablePath, Err: err}
		}
		return nil, fmt.Errorf("opening table %s: %w", tablePath, err)
	}
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading snapshot of %s: %w", tablePath, err)
	}
	if o.view == "" {
		o.view = filepath.Base(filepath.Clean(store.Location()))
	}
	if err := checkReadable(snap); err != nil {
		return nil, fmt.Errorf("table %s: %w", tablePath, err)
	}

	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("starting duckdb: %w", err)
	}
	sqldb := sql.OpenDB(connector)
	sqldb.SetMaxOpenConns(1)
	d := &DB{db: sqldb, view: o.view, version: snap.Version(), files: snap.NumFiles()}
	d.conn, err = sqldb.Conn(ctx)
	if err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("connecting to duckdb: %w", err)
	}
	for _, s := range sessionSetup {
		if _, err := d.conn.ExecContext(ctx, s); err != nil {
			d.Close()
			return nil, fmt.Errorf("setting up duckdb (%s): %w", s, err)
		}
	}
	if err := registerVariantJSON(ctx, d.conn); err != nil {
		d.Close()
		return nil, fmt.Errorf("setting up duckdb: %w", err)
	}
	resolve := func(p string) (string, error) { return localPath(store, p) }
	if _, local := store.(*delta.LocalStorage); !local {
		if o.cacheDir == "" {
			if o.cacheDir, err = DefaultCacheDir(); err != nil {
				d.Close()
				return nil, err
			}
		}
		paths, st, err := cacheFiles(ctx, store, tablePath, o.cacheDir, snap.Files())
		d.cache = st
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("table %s: %w", tablePath, err)
		}
		resolve = func(p string) (string, error) { return paths[p], nil }
	}
	if err := createView(ctx, d.conn, o.view, store, resolve, snap); err != nil {
		d.Close()
		return nil, fmt.Errorf("table %s: %w", tablePath, err)
	}
	return d, nil
}

// View returns the name of the view over the table.
func (d *DB) View() string { return d.view }

// Version returns the table version the view reads.
func (d *DB) Version() int64 { return d.version }

// NumFiles returns the number of data files the view reads.
func (d *DB) NumFiles() int { return d.files }

// Cache says what Open fetched into, and reused from, the local cache of a
// table on an object store; zero for a local table.
func (d *DB) Cache() CacheStats { return d.cache }

// Query runs one statement and returns its rows, for callers that consume
// values rather than print them. The caller closes the rows.
func (d *DB) Query(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	return d.conn.QueryContext(ctx, stmt, args...)
}

// Print runs one statement and writes its result to w in format f. A
// statement without a result (SET, CREATE ...) prints nothing in csv and
// json, and "OK" in table format.
func (d *DB) Print(ctx context.Context, w io.Writer, stmt string, f Format) error {
	rows, err := d.conn.QueryContext(ctx, stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := Write(w, rows, f); err != nil {
		return err
	}
	return rows.Close()
}

// Close releases the DuckDB session.
func (d *DB) Close() error {
	var err error
	if d.conn != nil {
		err = d.conn.Close()
	}
	return errors.Join(err, d.db.Close())
}

// Run opens the table at tablePath, runs one SQL statement against its view
// and writes the result to w in format f.
func Run(ctx context.Context, tablePath, stmt string, w io.Writer, f Format) error {
	db, err := Open(ctx, tablePath)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Print(ctx, w, stmt, f)
}
