package delta

import (
	"runtime"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/format"
)

// pageBufferSize is the uncompressed size at which the Parquet writer cuts
// a data page (parquet.PageBufferSize).
const pageBufferSize = 1 << 20

// zstdWindow is the zstd window of the pages' compression: the page size,
// so every back-reference within a page stays in reach (a page is one
// zstd frame of its own; a larger window finds nothing more). It also sizes
// the encoder's history buffer, which with zstd's default window for
// SpeedFastest (4 MiB, history twice that) was 8 MiB per encoder.
const zstdWindow = pageBufferSize

// zstdCodec compresses data pages. SpeedFastest compresses these columns
// nearly as well as the default level at a fraction of the CPU.
var zstdCodec compress.Codec = newPageCodec(zstd.SpeedFastest)

// pageCodec is parquet-go's compress.Codec of ZSTD over klauspost's
// encoders with bounded memory: a window of zstdWindow, lower encoder
// memory (buffers grow to what the pages need instead of being allocated
// at their maximum), one goroutine per encoder. Encoders and decoders are
// kept on free lists of GOMAXPROCS each, the most that encode at once
// (one per file of a flush, plus a compaction's): the memory they hold is
// bounded by the number of cores, and a garbage collection does not throw
// them away to be allocated again, as a sync.Pool would.
//
// It is safe for concurrent use.
type pageCodec struct {
	level    zstd.EncoderLevel
	encoders chan *zstd.Encoder
	decoders chan *zstd.Decoder
}

func newPageCodec(level zstd.EncoderLevel) *pageCodec {
	n := max(1, runtime.GOMAXPROCS(0))
	return &pageCodec{level: level, encoders: make(chan *zstd.Encoder, n), decoders: make(chan *zstd.Decoder, n)}
}

// String implements compress.Codec.
func (c *pageCodec) String() string { return "ZSTD" }

// CompressionCodec implements compress.Codec: the files say ZSTD, as
// parquet-go's own codec does.
func (c *pageCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

// Encode implements compress.Codec: src as one zstd frame, into dst's
// storage when it is large enough.
func (c *pageCodec) Encode(dst, src []byte) ([]byte, error) {
	var e *zstd.Encoder
	select {
	case e = <-c.encoders:
	default:
		var err error
		// The level first: it would reset the window to its default.
		e, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(c.level),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderConcurrency(1),
			zstd.WithLowerEncoderMem(true),
			zstd.WithZeroFrames(true),
			zstd.WithEncoderCRC(false),
		)
		if err != nil {
			return dst[:0], err
		}
	}
	out := e.EncodeAll(src, dst[:0])
	select {
	case c.encoders <- e:
	default: // enough pooled: let it go
	}
	return out, nil
}

// Decode implements compress.Codec.
func (c *pageCodec) Decode(dst, src []byte) ([]byte, error) {
	var d *zstd.Decoder
	select {
	case d = <-c.decoders:
	default:
		var err error
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return dst[:0], err
		}
	}
	out, err := d.DecodeAll(src, dst[:0])
	select {
	case c.decoders <- d:
	default:
		d.Close()
	}
	return out, err
}

var _ compress.Codec = (*pageCodec)(nil)
