package dedupe

import "math/bits"

// filter is a split block Bloom filter, the kind Parquet uses, over the
// keys of every bucket: a key it lacks is in no bucket, so Seen of a new
// key (the common case) reads one cache line instead of searching every
// bucket. Sized at filterBitsPerKey bits a key, up to 3.5% of new keys pass
// it and are looked up in the buckets.
type filter struct {
	blocks [][8]uint32
	n, cap int // keys added, keys it is sized for
}

const (
	filterBitsPerKey = 8
	filterMinKeys    = 1 << 16
)

// salt is the SBBF salt of the Parquet specification.
var salt = [8]uint32{0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d, 0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31}

func newFilter(keys int) filter {
	c := max(keys+keys/4, filterMinKeys)
	return filter{blocks: make([][8]uint32, c*filterBitsPerKey/256), cap: c}
}

func (f *filter) block(h key) *[8]uint32 {
	i, _ := bits.Mul64(h[1], uint64(len(f.blocks)))
	return &f.blocks[i]
}

func (f *filter) add(h key) {
	b, x := f.block(h), uint32(h[0])
	for i := range b {
		b[i] |= 1 << ((x * salt[i]) >> 27)
	}
	f.n++
}

func (f *filter) has(h key) bool {
	b, x := f.block(h), uint32(h[0])
	for i := range b {
		if b[i]&(1<<((x*salt[i])>>27)) == 0 {
			return false
		}
	}
	return true
}

func (f *filter) bytes() int64 { return int64(len(f.blocks)) * 32 }
