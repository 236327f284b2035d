package delta

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"
)

// Variant columns (PROTOCOL.md "Variant Data Type"): in Parquet an
// unshredded variant is a struct of two binaries, value and metadata, in
// the Parquet Variant binary encoding. This package reads a variant as its
// JSON text (the "recommended" exposure); it does not write variants, and
// refuses shredded ones (the variantShredding feature).

// variantPhysical is the Parquet struct of an unshredded variant.
var variantPhysical = &StructType{Fields: []*StructField{
	{Name: "value", Type: TypeBinary, Nullable: true},
	{Name: "metadata", Type: TypeBinary, Nullable: true},
}}

// readVariant reads the variant group n as JSON text.
func readVariant(n *pnode, vals levelVals) (any, error) {
	if n.child("typed_value") != nil {
		return nil, unsupported("reading table with", "variantShredding (a shredded variant column)")
	}
	m, err := readStruct(n, variantPhysical, vals)
	if err != nil {
		return nil, err
	}
	value, _ := m["value"].([]byte)
	meta, _ := m["metadata"].([]byte)
	if value == nil || meta == nil {
		return nil, fmt.Errorf("%w: variant without value or metadata", ErrCorruptLog)
	}
	s, err := VariantJSON(value, meta)
	if err != nil {
		return nil, fmt.Errorf("%w: variant: %w", ErrCorruptLog, err)
	}
	return s, nil
}

// VariantJSON renders a variant (its value and metadata binaries) as JSON
// text: objects, arrays, strings, numbers, booleans and null as JSON;
// decimals as numbers; dates, timestamps and UUIDs as strings; binaries as
// base64 strings.
func VariantJSON(value, metadata []byte) (string, error) {
	dict, err := variantDictionary(metadata)
	if err != nil {
		return "", err
	}
	b, err := appendVariant(nil, value, dict, 0)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func variantDictionary(m []byte) ([]string, error) {
	if len(m) < 1 || m[0]&0x0F != 1 {
		return nil, fmt.Errorf("variant metadata version is not 1")
	}
	osz := int(m[0]>>6) + 1
	p := 1
	n, ok := leUint(m, p, osz)
	if !ok {
		return nil, fmt.Errorf("truncated variant metadata")
	}
	p += osz
	if n > uint64(len(m)) {
		return nil, fmt.Errorf("variant dictionary of %d strings in %d bytes", n, len(m))
	}
	offs := make([]int, n+1)
	for i := range offs {
		o, ok := leUint(m, p, osz)
		if !ok {
			return nil, fmt.Errorf("truncated variant metadata")
		}
		offs[i] = int(o)
		p += osz
	}
	dict := make([]string, n)
	for i := range dict {
		lo, hi := p+offs[i], p+offs[i+1]
		if lo > hi || hi > len(m) {
			return nil, fmt.Errorf("variant dictionary offsets out of range")
		}
		dict[i] = string(m[lo:hi])
	}
	return dict, nil
}

func leUint(b []byte, p, size int) (uint64, bool) {
	if p < 0 || p+size > len(b) {
		return 0, false
	}
	var v uint64
	for i := size - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[p+i])
	}
	return v, true
}

func appendVariant(out, v []byte, dict []string, depth int) ([]byte, error) {
	if depth > 1000 {
		return nil, fmt.Errorf("variant nested too deep")
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("empty variant value")
	}
	trunc := fmt.Errorf("truncated variant value")
	basic, hdr := v[0]&3, int(v[0]>>2)
	switch basic {
	case 1: // short string
		if 1+hdr > len(v) {
			return nil, trunc
		}
		return appendJSONStr(out, string(v[1:1+hdr])), nil
	case 2, 3: // object, array
		osz := hdr&3 + 1
		idsz, large := 0, false
		if basic == 2 {
			idsz, large = (hdr>>2)&3+1, hdr&16 != 0
		} else {
			large = hdr&4 != 0
		}
		nsz := 1
		if large {
			nsz = 4
		}
		n, ok := leUint(v, 1, nsz)
		if !ok || n > uint64(len(v)) {
			return nil, trunc
		}
		p := 1 + nsz
		ids := make([]int, n)
		for i := range ids {
			id, ok := leUint(v, p, idsz)
			if !ok || id >= uint64(len(dict)) && basic == 2 {
				return nil, fmt.Errorf("variant field id out of range")
			}
			ids[i] = int(id)
			p += idsz
		}
		offs := make([]int, n+1)
		for i := range offs {
			o, ok := leUint(v, p, osz)
			if !ok {
				return nil, trunc
			}
			offs[i] = int(o)
			p += osz
		}
		open, close := byte('['), byte(']')
		if basic == 2 {
			open, close = '{', '}'
		}
		out = append(out, open)
		for i := range ids {
			if i > 0 {
				out = append(out, ',')
			}
			if basic == 2 {
				out = appendJSONStr(out, dict[ids[i]])
				out = append(out, ':')
			}
			lo := p + offs[i]
			if lo >= len(v) || lo < p {
				return nil, trunc
			}
			var err error
			if out, err = appendVariant(out, v[lo:], dict, depth+1); err != nil {
				return nil, err
			}
		}
		return append(out, close), nil
	}
	return appendVariantPrimitive(out, hdr, v[1:])
}

func appendVariantPrimitive(out []byte, id int, b []byte) ([]byte, error) {
	need := func(n int) error {
		if len(b) < n {
			return fmt.Errorf("truncated variant value")
		}
		return nil
	}
	sizes := map[int]int{3: 1, 4: 2, 5: 4, 6: 8, 7: 8, 8: 5, 9: 9, 10: 17, 11: 4, 12: 8, 13: 8, 14: 4, 17: 8, 18: 8, 19: 8, 20: 16}
	if n, ok := sizes[id]; ok {
		if err := need(n); err != nil {
			return nil, err
		}
	}
	switch id {
	case 0:
		return append(out, "null"...), nil
	case 1:
		return append(out, "true"...), nil
	case 2:
		return append(out, "false"...), nil
	case 3:
		return strconv.AppendInt(out, int64(int8(b[0])), 10), nil
	case 4:
		return strconv.AppendInt(out, int64(int16(binary.LittleEndian.Uint16(b))), 10), nil
	case 5:
		return strconv.AppendInt(out, int64(int32(binary.LittleEndian.Uint32(b))), 10), nil
	case 6:
		return strconv.AppendInt(out, int64(binary.LittleEndian.Uint64(b)), 10), nil
	case 7, 14:
		f := math.Float64frombits(binary.LittleEndian.Uint64(b))
		if id == 14 {
			f = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return appendJSONStr(out, strconv.FormatFloat(f, 'g', -1, 64)), nil
		}
		return appendJSONFloat(out, f), nil
	case 8, 9, 10:
		scale := int(b[0])
		var u *big.Int
		switch id {
		case 8:
			u = big.NewInt(int64(int32(binary.LittleEndian.Uint32(b[1:]))))
		case 9:
			u = big.NewInt(int64(binary.LittleEndian.Uint64(b[1:])))
		default:
			be := make([]byte, 16)
			for i := range 16 {
				be[i] = b[16-i]
			}
			u = new(big.Int).SetBytes(be)
			if be[0]&0x80 != 0 {
				u.Sub(u, new(big.Int).Lsh(big.NewInt(1), 128))
			}
		}
		return append(out, Decimal{Unscaled: u, Scale: scale}.String()...), nil
	case 11:
		d := int64(int32(binary.LittleEndian.Uint32(b)))
		return appendJSONStr(out, time.Unix(d*86400, 0).UTC().Format(time.DateOnly)), nil
	case 12, 13, 18, 19:
		x := int64(binary.LittleEndian.Uint64(b))
		t := time.UnixMicro(x).UTC()
		if id >= 18 {
			t = time.Unix(0, x).UTC()
		}
		layout := "2006-01-02 15:04:05.999999999"
		if id == 12 || id == 18 {
			layout += "+00:00"
		}
		return appendJSONStr(out, t.Format(layout)), nil
	case 17:
		x := int64(binary.LittleEndian.Uint64(b))
		return appendJSONStr(out, time.UnixMicro(x).UTC().Format("15:04:05.999999")), nil
	case 15, 16:
		if err := need(4); err != nil {
			return nil, err
		}
		n := int(binary.LittleEndian.Uint32(b))
		if n < 0 || 4+n > len(b) {
			return nil, fmt.Errorf("truncated variant value")
		}
		if id == 15 {
			return appendJSONStr(out, base64.StdEncoding.EncodeToString(b[4:4+n])), nil
		}
		return appendJSONStr(out, string(b[4:4+n])), nil
	case 20:
		return appendJSONStr(out, fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])), nil
	}
	return nil, fmt.Errorf("variant primitive type %d", id)
}

func appendJSONStr(out []byte, s string) []byte {
	j, _ := json.Marshal(s)
	return append(out, j...)
}
