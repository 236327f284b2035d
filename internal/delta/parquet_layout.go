package delta

import (
	"hash/maphash"
	"io"
	"slices"

	"github.com/parquet-go/parquet-go"
)

var dictSeed = maphash.MakeSeed()

// Page layout of the Parquet files this package writes (data files and
// checkpoints).
//
// Pages are DataPage V1: PROTOCOL.md says writers should default to V1,
// and older Spark vectorized readers cannot read V2 pages. Each leaf column
// of a file is PLAIN or dictionary (RLE_DICTIONARY) encoded, chosen per
// file from its first rows (dictThreshold): a dictionary pays for
// low-cardinality columns (event types, statuses, repeated ids) and costs
// for nearly unique ones (event ids, timestamps), which stay PLAIN. A
// dictionary that outgrows dictMaxBytes falls back to PLAIN for the rest of
// the column chunk, as parquet-mr does. Booleans are always PLAIN.

const (
	// dictSample is how many leading non-null values of a column decide
	// its encoding.
	dictSample = 512
	// dictThreshold: a column is dictionary encoded when its sample has at
	// most this fraction of distinct values.
	dictThreshold = 0.5
	// dictMaxBytes bounds a column chunk's dictionary (parquet-mr's
	// default dictionary page size).
	dictMaxBytes = 1 << 20
)

// chooseDictionary returns, per leaf column, whether its values (the
// encoder's first flush) are dictionary encoded.
func (e *fileEncoder) chooseDictionary() []bool {
	dict := make([]bool, len(e.cols))
	// Distinct values are counted by 64-bit hash (byte arrays) or bits:
	// a collision only makes a column look a little less distinct.
	seen := e.plan.dictSeen.Get().(map[uint64]struct{})
	defer e.plan.dictSeen.Put(seen)
	for c, vals := range e.cols {
		kind := e.plan.leafKind(c)
		if kind == parquet.Boolean {
			continue
		}
		bytesKind := kind == parquet.ByteArray || kind == parquet.FixedLenByteArray
		clear(seen)
		n := 0
		for _, v := range vals {
			if v.IsNull() {
				continue
			}
			if n++; n > dictSample {
				n = dictSample
				break
			}
			if bytesKind {
				seen[maphash.Bytes(dictSeed, v.ByteArray())] = struct{}{}
			} else {
				seen[valueBits(v)] = struct{}{}
			}
		}
		dict[c] = n >= 2 && float64(len(seen)) <= dictThreshold*float64(n)
	}
	return dict
}

// valueBits is the 64 bits of a fixed-width Parquet value.
func valueBits(v parquet.Value) uint64 {
	switch v.Kind() {
	case parquet.Int32:
		return uint64(uint32(v.Int32()))
	case parquet.Float:
		return uint64(v.Uint32())
	}
	return v.Uint64()
}

// leafKind is the Parquet physical type of leaf column c.
func (p *writePlan) leafKind(c int) parquet.Kind {
	return p.leafNodes[c].Type().Kind()
}

// layout returns the Parquet schema of p with leaf columns dict[c]
// dictionary encoded; schemas are built once per choice.
func (p *writePlan) layout(dict []bool) *parquet.Schema {
	key := make([]byte, len(dict))
	any := false
	for c, d := range dict {
		if d {
			key[c] = 1
			any = true
		}
	}
	if !any {
		return p.schema
	}
	if s, ok := p.layouts.Load(string(key)); ok {
		return s.(*parquet.Schema)
	}
	g := orderedGroup{}
	for _, f := range p.root.fields {
		g.fields = append(g.fields, namedNode{layoutNode(f, dict), f.pname})
	}
	s, _ := p.layouts.LoadOrStore(string(key), parquet.NewSchema("spark_schema", g))
	return s.(*parquet.Schema)
}

// layoutNode rebuilds the Parquet node of n (as planBuilder.build does)
// with the chosen encodings.
func layoutNode(n *wnode, dict []bool) parquet.Node {
	var node parquet.Node
	switch n.kind {
	case kindLeaf:
		node, _, _ = leafNode(n.typ) // planned already: cannot fail
		if dict[n.col] {
			node = parquet.Encoded(node, &parquet.RLEDictionary)
		}
	case kindStruct:
		g := orderedGroup{}
		for _, f := range n.fields {
			g.fields = append(g.fields, namedNode{layoutNode(f, dict), f.pname})
		}
		node = g
	case kindList:
		node = parquet.List(layoutNode(n.elem, dict))
	case kindMap:
		node = parquet.Map(layoutNode(n.key, dict), layoutNode(n.val, dict))
	}
	if n.nullable {
		node = parquet.Optional(node)
	} else {
		node = parquet.Required(node)
	}
	if n.fid > 0 {
		node = parquet.FieldID(node, n.fid)
	}
	return node
}

// writerKey is what a Parquet writer is made for: a reused writer must
// have the file's layout and page size.
type writerKey struct {
	layout *parquet.Schema
	page   int
}

// maxIdleWriters is how many Parquet writers of finished files a plan
// keeps for its next files: enough for the files of a commit written at
// once (one per partition value, GOMAXPROCS at a time) on two cores.
const maxIdleWriters = 4

// idleWriter is a kept Parquet writer and what it was made for.
type idleWriter struct {
	k writerKey
	//lint:ignore SA1019 see fileEncoder.w
	w *parquet.Writer
}

// writer returns a Parquet writer of k writing to out: the newest of p's
// idle writers of k, Reset, or a new one. A reused writer keeps the column
// buffers, dictionaries and page buffers it grew for earlier files, which
// new writers allocated again for every file: a quarter of the tracking
// worker's allocations (kpipe bench). The idle writers are a list, not a
// sync.Pool: a pool empties itself within two collections, and the
// tracking worker collects more often than it commits.
//
//lint:ignore SA1019 see fileEncoder.w
func (p *writePlan) writer(k writerKey, out io.Writer) *parquet.Writer {
	p.idleMu.Lock()
	for i := len(p.idle) - 1; i >= 0; i-- {
		if p.idle[i].k == k {
			w := p.idle[i].w
			p.idle = slices.Delete(p.idle, i, i+1)
			p.idleMu.Unlock()
			w.Reset(out)
			return w
		}
	}
	p.idleMu.Unlock()
	return parquet.NewWriter(out, append(writerOptions(k.page), k.layout)...)
}

// putWriter keeps w, of k, once it closed a file of a commit whole,
// dropping the oldest idle writer beyond maxIdleWriters; a writer whose
// file failed is not put back, its state unknown. Reset lets go of the
// file's output. parquet-go v0.32.1 is the first whose Reset keeps later
// files' footers whole (v0.32.0 lost their path_in_schema after a second
// Reset).
//
//lint:ignore SA1019 see fileEncoder.w
func (p *writePlan) putWriter(k writerKey, w *parquet.Writer) {
	w.Reset(io.Discard)
	p.idleMu.Lock()
	defer p.idleMu.Unlock()
	if len(p.idle) == maxIdleWriters {
		p.idle = slices.Delete(p.idle, 0, 1)
	}
	p.idle = append(p.idle, idleWriter{k, w})
}

// writerOptions are the Parquet writer options of every file.
// pageBytes is the data page size; 0 means pageBufferSize.
func writerOptions(pageBytes int) []parquet.WriterOption {
	if pageBytes <= 0 {
		pageBytes = pageBufferSize
	}
	return []parquet.WriterOption{
		parquet.Compression(zstdCodec),
		parquet.CreatedBy("kpipe", Version, ""),
		parquet.PageBufferSize(pageBytes),
		parquet.DataPageVersion(1),
		// No min/max in each data page's header: the column index holds
		// the same bounds per page (parquet-mr stopped writing them for
		// that reason), and computing them twice per page was 1.6% of the
		// tracking worker's CPU.
		parquet.DataPageStatistics(false),
		parquet.DictionaryMaxBytes(dictMaxBytes),
		// BYTE_ARRAY columns without a dictionary are PLAIN: parquet-go's
		// default for them, DELTA_LENGTH_BYTE_ARRAY, is what older
		// readers cannot decode.
		parquet.DefaultEncodingFor(parquet.ByteArray, &parquet.Plain),
	}
}
