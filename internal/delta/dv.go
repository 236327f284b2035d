package delta

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// DeletionVector is the deletionVector descriptor of an add or remove
// action (PROTOCOL.md "Deletion Vector Descriptor Schema"): which rows of
// the data file are no longer in the table.
type DeletionVector struct {
	// StorageType is "u" (a file beside the data named from a UUID), "i"
	// (inline in the log) or "p" (a file at an absolute path).
	StorageType    string `json:"storageType"`
	PathOrInlineDv string `json:"pathOrInlineDv"`
	// Offset is where the DV starts in its file (nil for inline DVs; read
	// as 0 when absent for the others).
	Offset      *int32 `json:"offset,omitempty"`
	SizeInBytes int32  `json:"sizeInBytes"`
	Cardinality int64  `json:"cardinality"`
	MaxRowIndex *int64 `json:"maxRowIndex,omitempty"`
}

// UniqueID is the DV's derived uniqueId: storageType and pathOrInlineDv,
// plus "@offset" when the offset is set. Logical files are keyed by (path,
// UniqueID).
func (d *DeletionVector) UniqueID() string {
	id := d.StorageType + d.PathOrInlineDv
	if d.Offset != nil {
		id += "@" + strconv.Itoa(int(*d.Offset))
	}
	return id
}

// parseDV decodes a deletionVector field; nil raw is no DV.
func parseDV(raw json.RawMessage) (*DeletionVector, error) {
	if len(raw) == 0 || isJSONNull(raw) {
		return nil, nil
	}
	var d DeletionVector
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%w: deletionVector: %w", ErrCorruptLog, err)
	}
	return &d, nil
}

// canonicalDV re-encodes a deletionVector field in the descriptor's field
// order, so that a DV read from a commit and from a checkpoint compare
// equal; JSON null is no DV, and what does not parse is kept as is.
func canonicalDV(raw json.RawMessage) json.RawMessage {
	d, err := parseDV(raw)
	if err != nil {
		return raw
	}
	if d == nil {
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return raw
	}
	return b
}

// dvKey is the DV part of a logical file's key: "" without a DV. A
// descriptor that does not parse keys by its raw text (reading the file's
// rows then fails with the parse error).
func dvKey(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	d, err := parseDV(raw)
	if err != nil || d == nil {
		return string(raw)
	}
	return d.UniqueID()
}

// DV returns the file's deletion vector descriptor, or nil.
func (a *AddFile) DV() (*DeletionVector, error) { return parseDV(a.DeletionVector) }

// deletedCount is the DV's cardinality (0 without one).
func (a *AddFile) deletedCount() int64 {
	d, err := a.DV()
	if err != nil || d == nil {
		return 0
	}
	return d.Cardinality
}

// DeletedRows returns the sorted row indexes (0-based positions in the data
// file) that f's deletion vector removes from the table, or nil when f has
// none. The DV is read from the log (inline) or from its file in store,
// whose format version and checksum are checked, as is the cardinality the
// descriptor records.
func DeletedRows(ctx context.Context, store Storage, f AddFile) ([]uint64, error) {
	d, err := f.DV()
	if err != nil || d == nil {
		return nil, err
	}
	rows, err := readDV(ctx, store, d)
	if err != nil {
		return nil, fmt.Errorf("deletion vector of %s: %w", f.Path, err)
	}
	if int64(len(rows)) != d.Cardinality {
		return nil, fmt.Errorf("%w: deletion vector of %s holds %d rows, its descriptor says %d", ErrCorruptLog, f.Path, len(rows), d.Cardinality)
	}
	return rows, nil
}

func readDV(ctx context.Context, store Storage, d *DeletionVector) ([]uint64, error) {
	if d.SizeInBytes < 0 {
		return nil, fmt.Errorf("%w: sizeInBytes %d", ErrCorruptLog, d.SizeInBytes)
	}
	switch d.StorageType {
	case "i":
		data, err := z85Decode(d.PathOrInlineDv)
		if err != nil {
			return nil, fmt.Errorf("%w: inline deletion vector: %w", ErrCorruptLog, err)
		}
		if len(data) < int(d.SizeInBytes) {
			return nil, fmt.Errorf("%w: inline deletion vector is %d bytes, sizeInBytes %d", ErrCorruptLog, len(data), d.SizeInBytes)
		}
		return decodeDVBitmap(data[:d.SizeInBytes], d.Cardinality)
	case "u", "p":
		key, err := dvFileKey(store, d)
		if err != nil {
			return nil, err
		}
		data, err := store.Read(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("reading deletion vector file %s: %w", key, err)
		}
		off := 0
		if d.Offset != nil {
			off = int(*d.Offset)
		}
		return dvFromFile(data, off, int(d.SizeInBytes), key, d.Cardinality)
	}
	return nil, fmt.Errorf("%w: deletion vector storage type %q", ErrUnsupportedFeature, d.StorageType)
}

// dvFileKey is the storage key of an on-disk DV: for "u",
// <random prefix>/deletion_vector_<uuid>.bin relative to the table root;
// for "p", the absolute path (which must be inside the table location).
func dvFileKey(store Storage, d *DeletionVector) (string, error) {
	if d.StorageType == "p" {
		return dataFileKey(store, d.PathOrInlineDv)
	}
	s := d.PathOrInlineDv
	if len(s) < 20 {
		return "", fmt.Errorf("%w: deletion vector path %q is shorter than a z85 UUID", ErrCorruptLog, s)
	}
	prefix, enc := s[:len(s)-20], s[len(s)-20:]
	b, err := z85Decode(enc)
	if err != nil || len(b) != 16 {
		return "", fmt.Errorf("%w: deletion vector UUID %q: %v", ErrCorruptLog, enc, err)
	}
	name := fmt.Sprintf("deletion_vector_%x-%x-%x-%x-%x.bin", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	if prefix != "" {
		name = prefix + "/" + name
	}
	return name, nil
}

// dvFromFile reads one DV of a DV file (PROTOCOL.md "Deletion Vector File
// Storage Format"): a version byte 1, then per DV a big-endian size, the
// bitmap and its big-endian CRC-32.
func dvFromFile(data []byte, off, size int, key string, limit int64) ([]uint64, error) {
	if len(data) == 0 || data[0] != 1 {
		return nil, fmt.Errorf("%w: deletion vector file %s: format version is not 1", ErrCorruptLog, key)
	}
	if off < 1 || off+4+size+4 > len(data) {
		return nil, fmt.Errorf("%w: deletion vector file %s: offset %d size %d beyond its %d bytes", ErrCorruptLog, key, off, size, len(data))
	}
	if n := int(binary.BigEndian.Uint32(data[off:])); n != size {
		return nil, fmt.Errorf("%w: deletion vector file %s: size at offset %d is %d, descriptor says %d", ErrCorruptLog, key, off, n, size)
	}
	bm := data[off+4 : off+4+size]
	if crc := binary.BigEndian.Uint32(data[off+4+size:]); crc != crc32.ChecksumIEEE(bm) {
		return nil, fmt.Errorf("%w: deletion vector file %s: checksum mismatch at offset %d", ErrCorruptLog, key, off)
	}
	return decodeDVBitmap(bm, limit)
}

// dvMagic starts a serialized DV bitmap in the portable format (little
// endian), the one PROTOCOL.md specifies.
const dvMagic = 1681511377

// dvMagicNative starts the older "native" serialization of Delta's
// RoaringBitmapArray (big endian), which PROTOCOL.md's inline example
// uses: a big-endian count of 32-bit bitmaps, then each bitmap's
// big-endian size and bytes; bitmap i holds the values whose high 32 bits
// are i.
const dvMagicNative = 1681511376

func decodeNativeDVBitmap(b []byte, limit int64) ([]uint64, error) {
	bad := func(why string) error { return fmt.Errorf("%w: deletion vector bitmap: %s", ErrCorruptLog, why) }
	n := int(binary.BigEndian.Uint32(b))
	b = b[4:]
	var out []uint64
	for i := range n {
		if len(b) < 4 {
			return nil, bad("truncated bitmap")
		}
		size := int(binary.BigEndian.Uint32(b))
		if size > len(b)-4 {
			return nil, bad("truncated bitmap")
		}
		var err error
		if out, _, err = decodeRoaring32(b[4:4+size], uint64(i)<<32, out, limit); err != nil {
			return nil, bad(err.Error())
		}
		b = b[4+size:]
	}
	return out, nil
}

// decodeDVBitmap decodes the magic number and the 64-bit RoaringBitmap in
// the "portable" format: a uint64 bucket count, then per bucket a uint32
// key (the high 32 bits) and a 32-bit RoaringBitmap.
func decodeDVBitmap(b []byte, limit int64) ([]uint64, error) {
	bad := func(why string) error { return fmt.Errorf("%w: deletion vector bitmap: %s", ErrCorruptLog, why) }
	if len(b) < 12 {
		return nil, bad("too short")
	}
	if binary.BigEndian.Uint32(b) == dvMagicNative {
		return decodeNativeDVBitmap(b[4:], limit)
	}
	if binary.LittleEndian.Uint32(b) != dvMagic {
		return nil, bad("bad magic number")
	}
	b = b[4:]
	buckets := binary.LittleEndian.Uint64(b)
	b = b[8:]
	var out []uint64
	prev := int64(-1)
	for i := uint64(0); i < buckets; i++ {
		if len(b) < 4 {
			return nil, bad("truncated bucket")
		}
		key := binary.LittleEndian.Uint32(b)
		if key&0x80000000 != 0 || int64(key) <= prev {
			return nil, bad("bucket keys not ascending and positive")
		}
		prev = int64(key)
		var n int
		var err error
		out, n, err = decodeRoaring32(b[4:], uint64(key)<<32, out, limit)
		if err != nil {
			return nil, bad(err.Error())
		}
		b = b[4+n:]
	}
	return out, nil
}

const (
	roaringCookieNoRun = 12346
	roaringCookie      = 12347
)

// decodeRoaring32 appends the values of one serialized 32-bit
// RoaringBitmap (RoaringFormatSpec), each plus high, to out, and returns
// the bytes it took. More than limit values in all (the descriptor's
// cardinality; negative: no limit) is an error, so a corrupt run container
// cannot expand without bound.
func decodeRoaring32(b []byte, high uint64, out []uint64, limit int64) ([]uint64, int, error) {
	p := 0
	u16 := func() (uint16, error) {
		if p+2 > len(b) {
			return 0, fmt.Errorf("truncated")
		}
		v := binary.LittleEndian.Uint16(b[p:])
		p += 2
		return v, nil
	}
	u32 := func() (uint32, error) {
		if p+4 > len(b) {
			return 0, fmt.Errorf("truncated")
		}
		v := binary.LittleEndian.Uint32(b[p:])
		p += 4
		return v, nil
	}
	cookie, err := u32()
	if err != nil {
		return nil, 0, err
	}
	var size int
	var runs []byte
	hasRun := false
	switch {
	case cookie&0xFFFF == roaringCookie:
		hasRun = true
		size = int(cookie>>16) + 1
		nb := (size + 7) / 8
		if p+nb > len(b) {
			return nil, 0, fmt.Errorf("truncated")
		}
		runs = b[p : p+nb]
		p += nb
	case cookie == roaringCookieNoRun:
		n, err := u32()
		if err != nil {
			return nil, 0, err
		}
		size = int(n)
	default:
		return nil, 0, fmt.Errorf("unknown roaring cookie %d", cookie)
	}
	if size > 1<<16 {
		return nil, 0, fmt.Errorf("%d containers", size)
	}
	keys := make([]uint16, size)
	cards := make([]int, size)
	for i := range size {
		k, err := u16()
		if err != nil {
			return nil, 0, err
		}
		c, err := u16()
		if err != nil {
			return nil, 0, err
		}
		keys[i], cards[i] = k, int(c)+1
	}
	if !hasRun || size >= 4 {
		p += 4 * size // offset header
	}
	for i := range size {
		base := high | uint64(keys[i])<<16
		switch {
		case hasRun && runs[i/8]&(1<<(i%8)) != 0:
			nr, err := u16()
			if err != nil {
				return nil, 0, err
			}
			for range int(nr) {
				start, err := u16()
				if err != nil {
					return nil, 0, err
				}
				l, err := u16()
				if err != nil {
					return nil, 0, err
				}
				if limit >= 0 && int64(len(out))+int64(l)+1 > limit {
					return nil, 0, fmt.Errorf("more values than the cardinality %d", limit)
				}
				for v := int(start); v <= int(start)+int(l) && v <= 0xFFFF; v++ {
					out = append(out, base|uint64(v))
				}
			}
		case cards[i] <= 4096:
			for range cards[i] {
				v, err := u16()
				if err != nil {
					return nil, 0, err
				}
				out = append(out, base|uint64(v))
			}
		default:
			if p+8192 > len(b) {
				return nil, 0, fmt.Errorf("truncated bitmap container")
			}
			for w := range 1024 {
				word := binary.LittleEndian.Uint64(b[p+8*w:])
				for word != 0 {
					bit := uint64(bits.TrailingZeros64(word))
					out = append(out, base|uint64(w*64)+bit)
					word &= word - 1
				}
			}
			p += 8192
		}
	}
	if !slices.IsSorted(out) {
		return nil, 0, fmt.Errorf("values not ascending")
	}
	return out, p, nil
}

// z85Alphabet is ZeroMQ's Base85 (Z85), which Delta uses for DV UUIDs and
// inline DVs.
const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

var z85Values = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i, c := range z85Alphabet {
		t[c] = int8(i)
	}
	return t
}()

// z85Decode decodes Z85 text, 5 characters to 4 bytes; Delta pads the
// encoded bytes to a multiple of 4, so callers cut the result to the
// length they know.
func z85Decode(s string) ([]byte, error) {
	if len(s)%5 != 0 {
		return nil, fmt.Errorf("z85 text of %d characters is not a multiple of 5", len(s))
	}
	out := make([]byte, 0, len(s)/5*4)
	for i := 0; i < len(s); i += 5 {
		var v uint64
		for j := range 5 {
			d := z85Values[s[i+j]]
			if d < 0 {
				return nil, fmt.Errorf("invalid z85 character %q", s[i+j])
			}
			v = v*85 + uint64(d)
		}
		if v > 0xFFFFFFFF {
			return nil, fmt.Errorf("z85 group %q overflows", s[i:i+5])
		}
		out = binary.BigEndian.AppendUint32(out, uint32(v))
	}
	return out, nil
}

// z85Encode is the inverse of z85Decode (input padded with zeros to a
// multiple of 4 bytes), for tests.
func z85Encode(b []byte) string {
	for len(b)%4 != 0 {
		b = append(slices.Clip(b), 0)
	}
	var sb strings.Builder
	for i := 0; i < len(b); i += 4 {
		v := binary.BigEndian.Uint32(b[i:])
		var c [5]byte
		for j := 4; j >= 0; j-- {
			c[j] = z85Alphabet[v%85]
			v /= 85
		}
		sb.Write(c[:])
	}
	return sb.String()
}
