package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// columnBatchRows is the most rows a ColumnBatch holds.
const columnBatchRows = 4096

// ColumnBatch is a run of consecutive rows of one data file, holding only
// the columns a ReadColumns call asked for, indexed in the order asked. It
// and the slices its methods return are valid only until the callback that
// received it returns: copy what must outlive it.
type ColumnBatch struct {
	file *AddFile
	n    int
	cols []batchCol
}

// batchCol is one requested column of a batch: values read from the file,
// or a file-wide constant (a partition value, or null when the file has no
// such column).
type batchCol struct {
	name  string
	typ   DataType
	node  *pnode // leaf in the file; nil for a constant
	unit  byte   // timeUnit of an INT64 timestamp leaf
	vals  []parquet.Value
	konst any    // constant value (nil is null)
	kb    []byte // konst as bytes, for a string or binary constant
}

// File returns the data file the rows come from.
func (b *ColumnBatch) File() AddFile { return *b.file }

// Len returns the number of rows in the batch.
func (b *ColumnBatch) Len() int { return b.n }

func (b *ColumnBatch) null(c *batchCol, row int) bool {
	if c.node == nil {
		return c.konst == nil
	}
	return c.vals[row].IsNull()
}

// Bytes returns the value of a string or binary column at row without
// copying it, or nil when the value is null or the column is of another
// type. The slice must not be modified or kept after the callback.
func (b *ColumnBatch) Bytes(col, row int) []byte {
	c := &b.cols[col]
	if c.typ != TypeString && c.typ != TypeBinary || b.null(c, row) {
		return nil
	}
	if c.node == nil {
		return c.kb
	}
	if c.node.ptype != format.ByteArray && c.node.ptype != format.FixedLenByteArray {
		return nil
	}
	return c.vals[row].ByteArray()
}

// Time returns the value of a timestamp, timestamp_ntz or date column at
// row (UTC; a date is its midnight), and false when it is null or the
// column is of another type.
func (b *ColumnBatch) Time(col, row int) (time.Time, bool) {
	c := &b.cols[col]
	if b.null(c, row) {
		return time.Time{}, false
	}
	if c.node == nil {
		t, ok := c.konst.(time.Time)
		return t, ok
	}
	if c.node.ptype == format.Int64 && (c.typ == TypeTimestamp || c.typ == TypeTimestampNTZ) {
		x := c.vals[row].Int64()
		switch c.unit {
		case 'm':
			return time.UnixMilli(x).UTC(), true
		case 'n':
			return time.Unix(0, x).UTC(), true
		}
		return time.UnixMicro(x).UTC(), true
	}
	if c.typ != TypeTimestamp && c.typ != TypeTimestampNTZ && c.typ != TypeDate {
		return time.Time{}, false
	}
	v, err := convertLeaf(c.node, c.typ, c.vals[row])
	t, ok := v.(time.Time)
	return t, ok && err == nil
}

// Value returns the value at row typed as ReadRows types it (nil for
// null); an error means the file's column cannot be read as the table's
// type.
func (b *ColumnBatch) Value(col, row int) (any, error) {
	c := &b.cols[col]
	if c.node == nil {
		return c.konst, nil
	}
	if c.vals[row].IsNull() {
		return nil, nil
	}
	return convertLeaf(c.node, c.typ, c.vals[row])
}

// ReadColumns reads the named columns of files (active files of snap, as
// Files, FilesFrom or AddedFiles return them) in the order given, and
// calls fn with batches of at most 4096 consecutive rows. Only the
// requested column chunks are decoded, and, on a LocalStorage, only they
// (and the footer) are read from disk; other storages return whole
// objects. A partition column reads as its file's partition value, and a
// column a file lacks (one added to the schema later) as null.
//
// Columns must be top-level columns of a primitive type (no struct, array
// or map); names match the schema exactly. An error returned by fn stops
// the read and is returned as is. Memory is bounded by one batch and the
// pages it spans, plus a whole file on storages without random access.
func ReadColumns(ctx context.Context, store Storage, snap *Snapshot, files []AddFile, cols []string, fn func(*ColumnBatch) error) error {
	if err := checkReadable(snap); err != nil {
		return err
	}
	if len(cols) == 0 {
		return fmt.Errorf("delta: ReadColumns needs at least one column")
	}
	types := make([]DataType, len(cols))
	for i, name := range cols {
		fl := snap.metadata.Schema.Field(name)
		if fl == nil {
			return fmt.Errorf("delta: column %q is not in the table schema", name)
		}
		if _, ok := fl.Type.(PrimitiveType); !ok {
			if _, dec := fl.Type.(*DecimalType); !dec {
				return fmt.Errorf("delta: column %q is a %s: ReadColumns reads primitive columns only", name, fl.Type)
			}
		}
		types[i] = fl.Type
	}
	for i := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := readFileColumns(ctx, store, snap, &files[i], cols, types, fn); err != nil {
			return err
		}
	}
	return nil
}

func readFileColumns(ctx context.Context, store Storage, snap *Snapshot, f *AddFile, cols []string, types []DataType, fn func(*ColumnBatch) error) error {
	b := &ColumnBatch{file: f, cols: make([]batchCol, len(cols))}
	inFile := false
	for i, name := range cols {
		c := &b.cols[i]
		c.name, c.typ = name, types[i]
		if slices.Contains(snap.metadata.PartitionColumns, name) {
			v, err := parsePartitionValue(c.typ, partitionValue(snap, snap.metadata.Schema.Field(name), f.PartitionValues))
			if err != nil {
				return fmt.Errorf("data file %s: partition %s: %w", f.Path, name, err)
			}
			c.konst = v
			switch v := v.(type) {
			case string:
				c.kb = []byte(v)
			case []byte:
				c.kb = v
			}
			continue
		}
		inFile = true
	}
	if !inFile {
		// Only partition columns: the stats say how many rows.
		n, ok := f.NumRecords()
		n -= f.deletedCount()
		if !ok {
			inFile = true // count the rows from the file
		} else {
			for n > 0 {
				b.n = int(min(n, columnBatchRows))
				if err := fn(b); err != nil {
					return err
				}
				n -= int64(b.n)
			}
			return nil
		}
	}
	del, err := DeletedRows(ctx, store, *f)
	if err != nil {
		return err
	}
	pf, closeFile, err := openDataFile(ctx, store, f)
	if err != nil {
		return err
	}
	defer closeFile()
	root, err := buildPTree(pf.Metadata().Schema)
	if err != nil {
		return fmt.Errorf("data file %s: %w", f.Path, err)
	}
	root.setMappingMode(mappingMode(snap))
	for i := range b.cols {
		c := &b.cols[i]
		if slices.Contains(snap.metadata.PartitionColumns, c.name) {
			continue
		}
		var n *pnode
		if sf := snap.metadata.Schema.Field(c.name); sf != nil {
			n = root.fieldChild(sf)
		} else {
			n = root.child(c.name)
		}
		if n == nil {
			continue // added to the schema after this file: null
		}
		if !n.leaf || n.rep == format.Repeated {
			return fmt.Errorf("data file %s: column %q is not a primitive parquet column", f.Path, c.name)
		}
		c.node, c.unit = n, timeUnit(n.elem)
		c.vals = make([]parquet.Value, columnBatchRows)
	}
	d := &deletedCursor{rows: del}
	for _, rg := range pf.RowGroups() {
		if err := readRowGroupColumns(ctx, rg, b, d, fn); err != nil {
			var ce *callbackError
			if errors.As(err, &ce) {
				return ce.err
			}
			return fmt.Errorf("data file %s: %w", f.Path, err)
		}
	}
	return nil
}

// callbackError carries an error of the callback out of a row group
// read, to be returned as is.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }
func (e *callbackError) Unwrap() error { return e.err }

// deletedCursor walks a file's deleted rows (sorted) as its batches are
// read: next is the file row index of the next batch.
type deletedCursor struct {
	rows []uint64
	next uint64
}

// filter drops the deleted rows from a batch of n rows just read, moving
// the kept values of each file column down, and returns how many are kept.
func (d *deletedCursor) filter(b *ColumnBatch, n int) int {
	start := d.next
	d.next += uint64(n)
	if len(d.rows) == 0 || d.rows[0] >= d.next {
		return n
	}
	kept := 0
	for i := 0; i < n; i++ {
		if len(d.rows) > 0 && d.rows[0] == start+uint64(i) {
			d.rows = d.rows[1:]
			continue
		}
		for c := range b.cols {
			if b.cols[c].node != nil {
				b.cols[c].vals[kept] = b.cols[c].vals[i]
			}
		}
		kept++
	}
	return kept
}

func readRowGroupColumns(ctx context.Context, rg parquet.RowGroup, b *ColumnBatch, d *deletedCursor, fn func(*ColumnBatch) error) error {
	chunks := rg.ColumnChunks()
	curs := make([]*columnCursor, len(b.cols))
	for i := range b.cols {
		if n := b.cols[i].node; n != nil {
			if n.col >= len(chunks) {
				return fmt.Errorf("column %q has no chunk in a row group", b.cols[i].name)
			}
			curs[i] = &columnCursor{pages: chunks[n.col].Pages()}
		}
	}
	defer func() {
		for _, c := range curs {
			if c != nil {
				c.pages.Close()
			}
		}
	}()
	for left := rg.NumRows(); left > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.n = int(min(left, columnBatchRows))
		for i, c := range curs {
			if c == nil {
				continue
			}
			got, err := c.read(b.cols[i].vals[:b.n])
			if err != nil {
				return fmt.Errorf("reading column %q: %w", b.cols[i].name, err)
			}
			if got < b.n {
				return fmt.Errorf("%w: column %q has fewer values than its row group has rows", ErrCorruptLog, b.cols[i].name)
			}
		}
		read := b.n
		left -= int64(read)
		if b.n = d.filter(b, read); b.n == 0 {
			continue
		}
		if err := fn(b); err != nil {
			return &callbackError{err}
		}
	}
	return nil
}

// columnCursor reads the values of one column chunk across its pages. The
// pages are not released to parquet-go's pool, so byte arrays handed out
// stay valid for as long as they are referenced.
type columnCursor struct {
	pages parquet.Pages
	vr    parquet.ValueReader
}

// read fills dst, returning fewer values only at the end of the chunk.
func (c *columnCursor) read(dst []parquet.Value) (int, error) {
	n := 0
	for n < len(dst) {
		if c.vr == nil {
			p, err := c.pages.ReadPage()
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			c.vr = p.Values()
		}
		k, err := c.vr.ReadValues(dst[n:])
		n += k
		if errors.Is(err, io.EOF) {
			c.vr = nil
			continue
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// openDataFile opens a data file for column reads: through an open file
// when the storage is a LocalStorage (so only the chunks read are read from
// disk), else from the whole object.
func openDataFile(ctx context.Context, store Storage, f *AddFile) (*parquet.File, func(), error) {
	key, err := dataFileKey(store, f.Path)
	if err != nil {
		return nil, nil, err
	}
	opts := []parquet.FileOption{parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true)}
	if ls, ok := store.(*LocalStorage); ok {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		p, err := ls.path(key)
		if err != nil {
			return nil, nil, err
		}
		osf, err := os.Open(p)
		if err != nil {
			return nil, nil, fmt.Errorf("reading data file %s: %w", f.Path, mapFSError(err))
		}
		st, err := osf.Stat()
		if err != nil {
			osf.Close()
			return nil, nil, fmt.Errorf("reading data file %s: %w", f.Path, err)
		}
		pf, err := parquet.OpenFile(osf, st.Size(), opts...)
		if err != nil {
			osf.Close()
			return nil, nil, fmt.Errorf("data file %s: opening parquet: %w", f.Path, err)
		}
		return pf, func() { osf.Close() }, nil
	}
	data, err := store.Read(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("reading data file %s: %w", f.Path, err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("data file %s: opening parquet: %w", f.Path, err)
	}
	return pf, func() {}, nil
}

// FilesFrom returns those of files (active files of snap) that may hold a
// row whose column is at or after from, in the order given: a file is left
// out only when its partition value or its maxValues statistic for the
// column proves every row earlier (or null, for a partition value). A file
// without stats for the column is kept. Column must be a top-level
// timestamp, timestamp_ntz or date column.
//
// Statistics of timestamps are truncated to milliseconds (by this package,
// Spark and delta-rs alike), so a file is kept when its max plus 1 ms, or
// plus one day for a date, is after from.
func FilesFrom(snap *Snapshot, files []AddFile, column string, from time.Time) ([]AddFile, error) {
	fl := snap.metadata.Schema.Field(column)
	if fl == nil {
		return nil, fmt.Errorf("delta: column %q is not in the table schema", column)
	}
	slack := time.Millisecond
	switch fl.Type {
	case TypeTimestamp, TypeTimestampNTZ:
	case TypeDate:
		slack = 24 * time.Hour
	default:
		return nil, fmt.Errorf("delta: column %q is a %s: FilesFrom needs a timestamp or date column", column, fl.Type)
	}
	isPart := slices.Contains(snap.metadata.PartitionColumns, column)
	var out []AddFile
	for _, f := range files {
		if isPart {
			v, err := parsePartitionValue(fl.Type, partitionValue(snap, fl, f.PartitionValues))
			if err != nil {
				return nil, fmt.Errorf("data file %s: partition %s: %w", f.Path, column, err)
			}
			t, ok := v.(time.Time)
			if !ok {
				continue // null: no row is in the window
			}
			if fl.Type == TypeDate {
				t = t.Add(slack)
			} else {
				t = t.Add(time.Nanosecond) // exact: keep when t >= from
			}
			if t.After(from) {
				out = append(out, f)
			}
			continue
		}
		max, ok := statMaxTime(f.Stats, physicalName(fl, mappingMode(snap)))
		if !ok || max.Add(slack).After(from) {
			out = append(out, f)
		}
	}
	return out, nil
}

// statMaxTime returns the maxValues statistic of a top-level time column.
func statMaxTime(stats, column string) (time.Time, bool) {
	if stats == "" {
		return time.Time{}, false
	}
	var s struct {
		MaxValues map[string]json.RawMessage `json:"maxValues"`
	}
	if json.Unmarshal([]byte(stats), &s) != nil {
		return time.Time{}, false
	}
	raw, ok := s.MaxValues[column]
	if !ok {
		return time.Time{}, false
	}
	var str string
	if json.Unmarshal(raw, &str) != nil {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", time.DateOnly} {
		if t, err := time.Parse(layout, str); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// AddedFiles returns the files active in snap that were not active in
// prev, sorted by path: what commits after prev added and did not remove
// again. A writer that built state from prev refreshes it with them (files
// that compaction rewrote come back too: their rows are not new, but
// reading them again is harmless for a set). A nil prev means every file.
func AddedFiles(prev, snap *Snapshot) []AddFile {
	if prev == nil {
		return snap.Files()
	}
	var out []AddFile
	for _, k := range slices.Sorted(maps.Keys(snap.files)) {
		if _, ok := prev.files[k]; !ok {
			out = append(out, *snap.files[k])
		}
	}
	return out
}
