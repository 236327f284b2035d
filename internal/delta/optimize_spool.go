package delta

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"time"
)

// rewriteRowGroupBytes bounds the compressed bytes of a row group of the
// files OPTIMIZE and auto-compaction write, and so what the Parquet writer
// of one holds in memory besides a page of values per column: with a
// storage that takes files from disk (spooler), the file itself goes to
// disk as it is encoded, and a rewrite holds about this much however large
// its target size. A variable for tests.
var rewriteRowGroupBytes int64 = 8 << 20

// rewritePageBytes is the data page size of rewritten files: the writer
// holds up to a page of values per column (twice that in slice capacity),
// which with 1 MiB pages made a wide table's compaction hold more than
// its row group; 256 KiB pages make files about 2% larger
// (BenchmarkFlushCodec).
const rewritePageBytes = 256 << 10

// rewriteSpool is how a rewrite of rows of about bytesPerRow compressed
// bytes (0 if unknown) writes its file to out.
func rewriteSpool(out io.Writer, bytesPerRow float64) spoolOptions {
	o := spoolOptions{out: out, pageBytes: rewritePageBytes, rowGroupBytes: rewriteRowGroupBytes}
	if bytesPerRow > 0 {
		o.rowGroupRows = max(flushRows, int64(float64(rewriteRowGroupBytes)/bytesPerRow))
	}
	return o
}

// rewriteFile is a data file a rewrite writes: encoded into a local file
// as its rows come when the storage takes objects from local files
// (spooler), else in memory and stored with Write.
type rewriteFile struct {
	t         *Table
	enc       *fileEncoder
	spool     spooler
	f         *os.File
	size      countingWriter
	key, path string
	values    map[string]string
}

// newRewriteFile starts data file idx of the rewrite of a partition of
// values, of rows of about bytesPerRow (0 if unknown); capRows sizes the
// encoder's buffers. Its finish or release must be called.
func (t *Table) newRewriteFile(snap *Snapshot, plan *writePlan, values map[string]string, idx, capRows int, bytesPerRow float64) (*rewriteFile, error) {
	dirKey, dirPath := partitionDir(partitionKeyColumns(snap), values)
	name := dataFileName(idx)
	r := &rewriteFile{t: t, enc: newFileEncoder(plan, capRows), key: dirKey + name, path: dirPath + name, values: values}
	sp, ok := t.store.(spooler)
	if !ok {
		// In memory, but the pages of a row group are written to the
		// file's buffer as it fills rather than all at the end.
		r.enc.spoolTo(rewriteSpool(nil, bytesPerRow))
		return r, nil
	}
	f, err := sp.spoolFile(r.key)
	if err != nil {
		r.enc.release()
		return nil, fmt.Errorf("delta: optimize: writing data file: %w", err)
	}
	r.spool, r.f, r.size.w = sp, f, f
	r.enc.spoolTo(rewriteSpool(&r.size, bytesPerRow))
	return r, nil
}

// finish encodes the rows not yet written, stores the file and returns
// its add action (dataChange false); it releases r.
func (r *rewriteFile) finish(ctx context.Context) (AddFile, error) {
	defer r.release()
	data, err := r.enc.encode()
	if err != nil {
		return AddFile{}, err
	}
	stats := r.enc.statsJSON()
	size := int64(len(data))
	if r.f != nil {
		size = r.size.n
		f := r.f
		r.f = nil // writeSpooled removes it
		err = r.spool.writeSpooled(ctx, r.key, f)
	} else {
		err = r.t.store.Write(ctx, r.key, data)
	}
	if err != nil {
		return AddFile{}, fmt.Errorf("delta: optimize: writing data file: %w", err)
	}
	pv := maps.Clone(r.values)
	if pv == nil {
		pv = map[string]string{}
	}
	return AddFile{
		Path:             r.path,
		PartitionValues:  pv,
		Size:             size,
		ModificationTime: time.Now().UnixMilli(),
		DataChange:       false,
		Stats:            stats,
	}, nil
}

// release gives the encoder back and removes a local file not stored.
func (r *rewriteFile) release() {
	if r.enc != nil {
		r.enc.release()
		r.enc = nil
	}
	if r.f != nil {
		_ = r.f.Close()
		_ = os.Remove(r.f.Name())
		r.f = nil
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
