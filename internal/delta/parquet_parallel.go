package delta

import (
	"sync"
)

// A large data file is shredded on several goroutines at once. Its rows are
// cut into blocks of flushRows consecutive rows, the unit in which the
// serial path hands values to the Parquet writer anyway; shredders take
// every procs-th block, each into an encoder of its own (columns,
// statistics, memo), and the calling goroutine hands the blocks to the
// file's Parquet writer in row order and merges their statistics in the
// same order. The writer sees the same values in the same calls as when
// one goroutine shreds the file, so the file's bytes and statistics are the
// same (TestParallelShredSameFile), and the shredding of a file, the
// largest share of a flush, uses every core even when the flush writes one
// file.

// parallelShredMin is the fewest rows of a file shredded in parallel:
// below it the blocks are too few to be worth the goroutines.
const parallelShredMin = 4 * flushRows

// blocksInFlight bounds the shredded blocks per shredder not yet written,
// so a shredder ahead of the writer holds at most this many blocks.
const blocksInFlight = 1

// shredBlock is one shredded block of a file: its encoder holds the
// block's column values and statistics, or err the block's failure.
type shredBlock struct {
	enc  *fileEncoder
	n    int // rows
	last int // index in rows of the block's last row
	err  error
}

// shredFile shreds the rows of f (indexes into in's rows) into f.enc, on
// up to procs goroutines when f is large enough. An error is the lowest
// failing row's, as withRow names it.
func shredFile(f *dataFile, in shredIn, procs int) error {
	if procs > 1 && len(f.rows) >= parallelShredMin {
		return shredFileParallel(f, in, procs)
	}
	for lo := 0; lo < len(f.rows); lo += flushRows {
		blk := f.rows[lo:min(lo+flushRows, len(f.rows))]
		if err := f.enc.shredRange(blk, in); err != nil {
			return err
		}
		if err := f.enc.endBlock(len(blk), blk[len(blk)-1]); err != nil {
			return err
		}
	}
	return nil
}

// rowKeys is addRow's count of row i's partition keys, -1 when unknown.
func rowKeys(present []uint8, i int) int {
	if present == nil {
		return -1
	}
	return int(present[i])
}

func shredFileParallel(f *dataFile, in shredIn, procs int) (err error) {
	e := f.enc
	nblocks := (len(f.rows) + flushRows - 1) / flushRows
	procs = min(procs, nblocks)
	stop := make(chan struct{})
	out := make([]chan *shredBlock, procs)
	var wg sync.WaitGroup
	for s := range procs {
		out[s] = make(chan *shredBlock, blocksInFlight)
		wg.Go(func() {
			shredBlocks(e, f.rows, in, s, procs, out[s], stop)
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
		// Blocks shredded but not written.
		for _, ch := range out {
			for len(ch) > 0 {
				(<-ch).enc.release()
			}
		}
	}()
	for bi := range nblocks {
		b := <-out[bi%procs]
		if b.err != nil {
			b.enc.release()
			return b.err
		}
		if err := e.writeBlock(b); err != nil {
			return err
		}
	}
	return nil
}

// shredBlocks shreds blocks s, s+procs, s+2*procs, … of the file's rows
// (idx, indexes into rows) into encoders like e, sending each on out; it
// stops after a failed block and when stop is closed. At most
// blocksInFlight of its blocks are in out at once (out's capacity), and
// the writer takes them out in order.
func shredBlocks(e *fileEncoder, idx []int, in shredIn, s, procs int, out chan<- *shredBlock, stop <-chan struct{}) {
	for b := s; b*flushRows < len(idx); b += procs {
		lo, hi := b*flushRows, min((b+1)*flushRows, len(idx))
		blk := &shredBlock{enc: newFileEncoder(e.plan, flushRows), n: hi - lo, last: idx[hi-1]}
		blk.enc.casts, blk.enc.memo = e.casts, e.memo
		blk.err = blk.enc.shredRange(idx[lo:hi], in)
		select {
		case out <- blk:
		case <-stop:
			blk.enc.release()
			return
		}
		if blk.err != nil {
			return
		}
	}
}

// shredRange shreds rows idx of in into e's columns, without handing
// them to a Parquet writer; an error (or a panic) is the failing row's.
func (e *fileEncoder) shredRange(idx []int, in shredIn) (err error) {
	cur := -1
	defer func() {
		if p := recover(); p != nil {
			err = withRow(rowPanic(p), cur)
		}
	}()
	if vals := in.rows.vals; vals != nil {
		for _, i := range idx {
			cur = i
			if err := e.addValues(vals[i], in.bind); err != nil {
				return withRow(err, i)
			}
		}
		return nil
	}
	rows := in.rows.maps
	for _, i := range idx {
		cur = i
		e.rootIgnored = rowKeys(in.present, i)
		if err := e.writeStruct(e.plan.root, rows[i], 0, false, true); err != nil {
			return withRow(err, i)
		}
	}
	return nil
}

// shredIn are the rows a file's indexes refer to: present[i], when
// present is not nil, is how many partition keys row map i has (see
// groupRows); bind is the plan's binding to the columns of rows given by
// column.
type shredIn struct {
	rows    inRows
	present []uint8
	bind    *rootBinding
}

// writeBlock appends block b, the next rows of e's file, to e: its
// statistics are merged into e's and its values are e's (endBlock); b's
// encoder is released.
func (e *fileEncoder) writeBlock(b *shredBlock) error {
	be := b.enc
	b.enc = nil
	defer be.release()
	for i := range e.stats {
		e.stats[i].merge(&be.stats[i])
	}
	// e's columns are empty between blocks: take the block's values.
	e.cols, be.cols = be.cols, e.cols
	err := e.endBlock(b.n, b.last)
	if b.n == flushRows {
		// Handed to the writer: give the emptied columns back.
		e.cols, be.cols = be.cols, e.cols
	}
	return err
}

// endBlock counts the n rows just shredded into e's columns, the last of
// them row last, and when they are a full block hands them to the Parquet
// writer, as addRow does every flushRows rows; a short last block stays
// for encode. A panic of the writer is row last's error.
func (e *fileEncoder) endBlock(n, last int) (err error) {
	e.n += int64(n)
	if n < flushRows {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = withRow(rowPanic(p), last)
		}
	}()
	return e.flush()
}

// merge adds o, the statistics of the rows after s's, to s: the result is
// what one pass over both would have collected (the first of equal minima
// or maxima is kept, as observe* keep it).
func (s *colStats) merge(o *colStats) {
	s.nulls += o.nulls
	s.bad = s.bad || o.bad
	if !o.has {
		return
	}
	if !s.has {
		s.minI, s.maxI, s.minF, s.maxF, s.minS, s.maxS = o.minI, o.maxI, o.minF, o.maxF, o.minS, o.maxS
		s.has = true
		return
	}
	if o.minI < s.minI {
		s.minI = o.minI
	}
	if o.maxI > s.maxI {
		s.maxI = o.maxI
	}
	if o.minF < s.minF {
		s.minF = o.minF
	}
	if o.maxF > s.maxF {
		s.maxF = o.maxF
	}
	if o.minS < s.minS {
		s.minS = o.minS
	}
	if o.maxS > s.maxS {
		s.maxS = o.maxS
	}
}
