package delta

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"
)

// codecPages are pages of the sizes the writer makes, and larger: empty,
// tiny, one zstd block, more than one, a full page, three pages' worth.
func codecPages() [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var pages [][]byte
	for _, n := range []int{0, 1, 100, 64 << 10, 64<<10 + 1, 300 << 10, pageBufferSize, 3 * pageBufferSize} {
		var b bytes.Buffer
		for b.Len() < n {
			// Text with repeats near and far, like a column of ids.
			fmt.Fprintf(&b, "evt-%08d|%s|", rng.IntN(5000), []string{"assigned", "completed", "created"}[rng.IntN(3)])
		}
		pages = append(pages, b.Bytes()[:n])
	}
	return pages
}

// TestPageCodecRoundTrip: every page decodes to itself with this codec and
// with parquet-go's (what other readers of ZSTD pages do), and no frame
// asks a reader for a window larger than zstdWindow, however large the
// page.
func TestPageCodecRoundTrip(t *testing.T) {
	c := newPageCodec(zstd.SpeedFastest)
	other := &pqzstd.Codec{}
	for _, p := range codecPages() {
		enc, err := c.Encode(nil, p)
		if err != nil {
			t.Fatalf("%d bytes: %v", len(p), err)
		}
		for name, d := range map[string]compress.Codec{"kpipe": c, "parquet-go": other} {
			got, err := d.Decode(nil, enc)
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("%d bytes decoded by %s: %d bytes back, %v", len(p), name, len(got), err)
			}
		}
		var h zstd.Header
		if err := h.Decode(enc); err != nil {
			t.Fatalf("%d bytes: frame header: %v", len(p), err)
		}
		if h.WindowSize > zstdWindow {
			t.Fatalf("%d bytes: frame window %d, want at most %d", len(p), h.WindowSize, zstdWindow)
		}
		// Into a buffer of another page's capacity, as the writer reuses
		// them.
		again, err := c.Encode(make([]byte, 7, 1<<10), p)
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("%d bytes: encoding into a used buffer gave %d bytes, want %d (%v)", len(p), len(again), len(enc), err)
		}
	}
	if c.String() != "ZSTD" || c.CompressionCodec() != other.CompressionCodec() {
		t.Fatalf("codec %s %v, want ZSTD %v", c, c.CompressionCodec(), other.CompressionCodec())
	}
}

// benchCodecs are the codecs compared: parquet-go's (what the writer used
// before pageCodec) and pageCodec, at the same level.
func benchCodecs() []struct {
	name  string
	codec func() compress.Codec
} {
	return []struct {
		name  string
		codec func() compress.Codec
	}{
		{"parquet-go", func() compress.Codec { return &pqzstd.Codec{Level: pqzstd.SpeedFastest, Concurrency: 1} }},
		{"kpipe", func() compress.Codec { return newPageCodec(zstd.SpeedFastest) }},
	}
}

// BenchmarkZstdEncoderMemory: a new codec compresses one page of each size
// the writer makes (64 KiB to 1 MiB, from an uncompressed data file of
// big rows) per op: B/op is what a new encoder allocates, retained-B what
// it holds afterwards (heap in use after a GC, the codec alive, less
// before).
func BenchmarkZstdEncoderMemory(b *testing.B) {
	raw := uncompressedFile(b)
	var pages [][]byte
	for _, n := range []int{64 << 10, 256 << 10, pageBufferSize} {
		pages = append(pages, raw[:min(n, len(raw))])
	}
	for _, bc := range benchCodecs() {
		b.Run("codec="+bc.name, func(b *testing.B) {
			var ms runtime.MemStats
			var retained uint64
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&ms)
				before := ms.HeapAlloc
				b.StartTimer()
				c := bc.codec()
				var dst []byte
				for _, p := range pages {
					dst, _ = c.Encode(dst[:0], p)
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&ms)
				retained += ms.HeapAlloc - min(before, ms.HeapAlloc)
				runtime.KeepAlive(c)
				b.StartTimer()
			}
			b.ReportMetric(float64(retained)/float64(b.N), "retained-B")
		})
	}
}

// uncompressedFile is a data file of 10,000 big rows without
// compression: the bytes of its pages.
func uncompressedFile(b *testing.B) []byte {
	old := zstdCodec
	zstdCodec = &uncompressed.Codec{}
	defer func() { zstdCodec = old }()
	tb, store := newBenchMemTable(b)
	rows := decodeBenchRows(b, benchJSONMsgs(b, 10000, true), true)
	if _, err := tb.Append(b.Context(), rows, AppendOptions{SchemaEvolution: true, MinRowsPerFile: 1 << 30}); err != nil {
		b.Fatal(err)
	}
	var biggest []byte
	for k, v := range store.objs {
		if !bytes.HasPrefix([]byte(k), []byte("_delta_log")) && len(v) > len(biggest) {
			biggest = v
		}
	}
	return biggest
}

func newBenchMemTable(b *testing.B) (*Table, *memStorage) {
	def, err := LoadTableDef(specTableDef)
	if err != nil {
		b.Fatal(err)
	}
	store := newMemStorage()
	tb, err := Create(b.Context(), store, def, WithCheckpointInterval(1<<30))
	if err != nil {
		b.Fatal(err)
	}
	return tb, store
}

// BenchmarkFlushCodec is an Append of 10,000 big rows (one file, the
// worker's lazy rows, memory storage) with each codec: rows/s, the file's
// bytes, and ratio, the size of the same file uncompressed over its size.
func BenchmarkFlushCodec(b *testing.B) {
	rawSize := len(uncompressedFile(b))
	for _, bc := range benchCodecs() {
		b.Run("codec="+bc.name, func(b *testing.B) {
			old := zstdCodec
			zstdCodec = bc.codec()
			defer func() { zstdCodec = old }()
			tb, _ := newBenchMemTable(b)
			rows := decodeBenchRows(b, benchJSONMsgs(b, 10000, true), true)
			opts := AppendOptions{SchemaEvolution: true, MinRowsPerFile: 1 << 30}
			res, err := tb.Append(b.Context(), rows, opts)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if res, err = tb.Append(b.Context(), rows, opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(rows)*b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(res.Bytes), "file-B")
			b.ReportMetric(float64(rawSize)/float64(res.Bytes), "ratio")
		})
	}
}

// BenchmarkZstdEncode is the steady state: one codec compresses the pages
// of BenchmarkZstdEncoderMemory again and again (MB/s of input).
func BenchmarkZstdEncode(b *testing.B) {
	raw := uncompressedFile(b)
	var pages [][]byte
	total := 0
	for _, n := range []int{64 << 10, 256 << 10, pageBufferSize} {
		pages = append(pages, raw[:min(n, len(raw))])
		total += min(n, len(raw))
	}
	for _, bc := range benchCodecs() {
		b.Run("codec="+bc.name, func(b *testing.B) {
			c := bc.codec()
			var dst []byte
			out := 0
			b.SetBytes(int64(total))
			b.ReportAllocs()
			for b.Loop() {
				out = 0
				for _, p := range pages {
					dst, _ = c.Encode(dst[:0], p)
					out += len(dst)
				}
			}
			b.ReportMetric(float64(total)/float64(out), "ratio")
		})
	}
}
