package jsonx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// errNotObject is the cause of input that is JSON but not an object.
var errNotObject = errors.New("not a JSON object")

// errEnd is the cause of input cut short.
var errEnd = errors.New("unexpected end of JSON input")

// DefaultMaxDepth is the deepest nesting DecodeObject accepts: objects and
// arrays, the top-level object counting as 1. ClaimX events nest about 6
// levels (event, raw_data, task, form_response, answers, photos[], photo),
// so 64 leaves ten times that; and it stays far below what a Delta table can
// store: a Parquet column has at most 255 definition levels, and a nested
// array takes up to 3 of them (the list, its repeated group, a nullable
// element), so 64 levels of arrays need at most 192 plus the column's own.
const DefaultMaxDepth = 64

// hardMaxDepth bounds DecodeOptions.MaxDepth, as encoding/json bounds its
// nesting: the decoder recurses once per level.
const hardMaxDepth = 10000

var (
	// ErrTooDeep is wrapped by the *DecodeError of input nested deeper
	// than the decoder's MaxDepth.
	ErrTooDeep = errors.New("JSON nested too deep")
	// ErrInvalidUTF8 is wrapped by the *DecodeError of a string (a value or
	// a key) that is not valid UTF-8, or that holds a \u escape of a lone
	// UTF-16 surrogate, which no UTF-8 string can hold. The decoder refuses
	// such input rather than replace the bytes with U+FFFD, as
	// encoding/json does, so that the original reaches the error topic
	// unchanged.
	ErrInvalidUTF8 = errors.New("JSON string is not valid UTF-8")
)

// DecodeError is the error of input DecodeObject refuses for a limit or
// for its encoding (ErrTooDeep, ErrInvalidUTF8); syntax errors are plain
// errors naming their offset.
type DecodeError struct {
	// Offset is the byte offset in the input: the '{' or '[' that nests
	// too deep, the first byte that is not UTF-8, or the '\' of a lone
	// surrogate escape.
	Offset int
	Err    error
}

func (e *DecodeError) Error() string { return fmt.Sprintf("%v at offset %d", e.Err, e.Offset) }

// Unwrap returns ErrTooDeep or ErrInvalidUTF8.
func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeOptions are the limits of DecodeObjectOpts.
type DecodeOptions struct {
	// MaxDepth is the deepest nesting of objects and arrays accepted, the
	// top-level object counting as 1; deeper input is an error wrapping
	// ErrTooDeep. 0 (or less) means DefaultMaxDepth; at most 10000.
	MaxDepth int
	// Lazy names top-level keys whose value, when it is an object, is
	// checked as DecodeObject checks everything (syntax, UTF-8, depth,
	// number range) but left undecoded: the map holds a *RawObject
	// instead of a map[string]any, and whoever needs the object reads it
	// with RawObject.Reader or decodes it with RawObject.Map. A value
	// that is not an object decodes as usual.
	Lazy map[string]bool
	// Alias lets the strings of the result (and RawObjects) share b's
	// memory instead of one copy of it: the caller promises never to
	// change b afterwards. It saves a copy of every message.
	Alias bool
}

// DecodeObject is DecodeObjectOpts with the default options: nesting up to
// DefaultMaxDepth.
func DecodeObject(b []byte, hint int) (map[string]any, error) {
	return DecodeObjectOpts(b, hint, DecodeOptions{})
}

// DecodeObjectOpts decodes one JSON object with room for hint top-level
// fields (at least 8), so that fields a caller adds later do not grow the
// map. It decodes every consumed message (the pipeline sizes the map for
// what its handlers add) and every API response (httpconn.Client.GetJSON).
//
// Numbers are int64 when integral and in range, float64 otherwise; a number
// beyond float64 is an error. Objects are map[string]any, arrays []any,
// strings string. Anything but whitespace after the object and JSON that is
// not an object are errors; so are, as a *DecodeError, nesting deeper than
// o.MaxDepth (ErrTooDeep) and a string that is not valid UTF-8 or holds a
// lone surrogate (ErrInvalidUTF8). Otherwise it accepts what encoding/json
// accepts, with the same values.
//
// It is one pass, about a third of the cost of encoding/json with
// UseNumber, and per call it saves what repeats from input to input: object
// keys are interned, recent integers and short strings are shared boxed
// values, and unescaped strings are substrings of one copy of b. The
// results are never written by the decoder afterwards, so they are safe to
// keep and to use from any goroutine; DecodeObject is safe for concurrent
// use.
func DecodeObjectOpts(b []byte, hint int, o DecodeOptions) (map[string]any, error) {
	d := getDecoder(b, 0, "")
	defer putDecoder(d)
	d.maxDepth = o.MaxDepth
	if d.maxDepth <= 0 {
		d.maxDepth = DefaultMaxDepth
	}
	d.maxDepth = min(d.maxDepth, hardMaxDepth)
	d.lazy = o.Lazy
	if o.Alias && len(b) > 0 {
		d.src = unsafe.String(&b[0], len(b))
	}
	if err := d.openTop(); err != nil {
		return nil, err
	}
	m, err := d.object(1, max(hint, 8))
	if err != nil {
		return nil, err
	}
	if err := d.closeTop(); err != nil {
		return nil, err
	}
	return m, nil
}

// openTop checks that the input holds an object, positioned at its '{'.
func (d *decoder) openTop() error {
	d.ws()
	if d.i >= len(d.b) {
		return errEnd
	}
	if d.b[d.i] != '{' {
		// A syntax error in the value is the better message.
		if _, err := d.value(0); err != nil {
			return err
		}
		return errNotObject
	}
	return nil
}

// closeTop checks that nothing but space follows the top-level object.
func (d *decoder) closeTop() error {
	d.ws()
	if d.i != len(d.b) {
		return fmt.Errorf("data after the JSON object at offset %d", d.i)
	}
	return nil
}

var decoderPool = sync.Pool{New: func() any { return &decoder{keys: make(map[string]string, 64)} }}

// getDecoder takes a decoder from the pool, positioned at b[i] (src: b as
// a string, or "" to make it on the first string value).
func getDecoder(b []byte, i int, src string) *decoder {
	d := decoderPool.Get().(*decoder)
	d.b, d.i, d.src = b, i, src
	return d
}

// putDecoder returns d to the pool, holding nothing of its input.
func putDecoder(d *decoder) {
	d.b, d.src, d.lazy = nil, "", nil
	decoderPool.Put(d)
}

// boxCacheSize is the number of boxed scalars a decoder remembers.
const boxCacheSize = 256

// maxBoxedLen bounds the strings a decoder remembers boxed.
const maxBoxedLen = 64

// maxInterned bounds a decoder's interned keys: messages with ever new keys
// (ids as keys) stop being interned there.
const maxInterned = 4096

type decoder struct {
	b        []byte
	i        int
	maxDepth int
	// lazy are DecodeOptions.Lazy: top-level keys left as *RawObject.
	lazy map[string]bool
	keys map[string]string
	// src is b as a string, made on the first string value: values
	// without escapes are substrings of it, one allocation per message.
	src string
	// ints and strs remember recently boxed values (direct-mapped): ids,
	// statuses and names repeat from message to message, and a boxed
	// value, immutable, can be shared instead of allocated again.
	ints [boxCacheSize]struct {
		n   int64
		box any
	}
	strs [boxCacheSize]any
	// plain is set by str when the string it returned is its raw bytes.
	plain bool
}

// boxInt returns n as an interface, shared with earlier messages when it
// was seen recently.
func (d *decoder) boxInt(n int64) any {
	if n >= 0 && n < 256 {
		return n // the runtime boxes these without allocating
	}
	e := &d.ints[uint64(n)%boxCacheSize]
	if e.box != nil && e.n == n {
		return e.box
	}
	e.n, e.box = n, n
	return e.box
}

// boxStr returns the string raw as an interface, shared with earlier
// messages when it was seen recently; start is raw's offset in d.b.
func (d *decoder) boxStr(raw []byte, start int) any {
	if len(raw) > maxBoxedLen {
		return d.substr(start, len(raw))
	}
	h := uint32(2166136261)
	for _, c := range raw {
		h = (h ^ uint32(c)) * 16777619
	}
	e := &d.strs[h%boxCacheSize]
	if s, ok := (*e).(string); ok && s == string(raw) {
		return *e
	}
	*e = string(raw) // a copy, not a substring: the cache keeps no message alive
	return *e
}

// substr returns d.b[start:start+n] as a substring of the message's copy.
func (d *decoder) substr(start, n int) string {
	if d.src == "" {
		d.src = string(d.b)
	}
	return d.src[start : start+n]
}

func (d *decoder) fail(what string) error {
	if d.i >= len(d.b) {
		return errEnd
	}
	return fmt.Errorf("invalid character %q %s at offset %d", d.b[d.i], what, d.i)
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (any, error) {
	d.ws()
	if d.i >= len(d.b) {
		return nil, errEnd
	}
	switch c := d.b[d.i]; {
	case c == '{':
		if depth >= d.maxDepth {
			return nil, &DecodeError{Offset: d.i, Err: ErrTooDeep}
		}
		m, err := d.object(depth+1, 8)
		if err != nil {
			return nil, err
		}
		return m, nil
	case c == '[':
		if depth >= d.maxDepth {
			return nil, &DecodeError{Offset: d.i, Err: ErrTooDeep}
		}
		return d.array(depth + 1)
	case c == '"':
		start := d.i + 1
		d.plain = false
		s, err := d.str(false)
		if err != nil {
			return nil, err
		}
		if d.plain {
			return d.boxStr(d.b[start:start+len(s)], start), nil
		}
		return s, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return true, d.lit("true")
	case c == 'f':
		return false, d.lit("false")
	case c == 'n':
		return nil, d.lit("null")
	}
	return nil, d.fail("looking for beginning of value")
}

func (d *decoder) lit(s string) error {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return nil
	}
	for k := 0; k < len(s); k++ {
		if d.i >= len(d.b) || d.b[d.i] != s[k] {
			return d.fail("in literal " + s)
		}
		d.i++
	}
	return nil
}

func (d *decoder) object(depth, hint int) (map[string]any, error) {
	d.i++ // {
	m := make(map[string]any, hint)
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m, nil
	}
	for {
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, d.fail("looking for beginning of object key string")
		}
		k, err := d.str(true)
		if err != nil {
			return nil, err
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, d.fail("after object key")
		}
		d.i++
		var v any
		if depth == 1 && d.lazy[k] {
			v, err = d.lazyValue(depth)
		} else {
			v, err = d.value(depth)
		}
		if err != nil {
			return nil, err
		}
		m[k] = v
		d.ws()
		if d.i >= len(d.b) {
			return nil, errEnd
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return m, nil
		default:
			return nil, d.fail("after object key:value pair")
		}
	}
}

func (d *decoder) array(depth int) (any, error) {
	d.i++ // [
	a := make([]any, 0, 4)
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return a, nil
	}
	for {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.ws()
		if d.i >= len(d.b) {
			return nil, errEnd
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return a, nil
		default:
			return nil, d.fail("after array element")
		}
	}
}

// str decodes a string literal; key strings are interned.
func (d *decoder) str(key bool) (string, error) {
	d.i++ // "
	start := d.i
	d.i = plainEnd(d.b, d.i)
	if d.i >= len(d.b) {
		return "", errEnd
	}
	switch c := d.b[d.i]; {
	case c == '"':
		raw := d.b[start:d.i]
		d.i++
		if !key {
			d.plain = true // s is raw: no escapes, valid ASCII
			return d.substr(start, len(raw)), nil
		}
		if s, ok := d.keys[string(raw)]; ok {
			return s, nil
		}
		s := string(raw)
		if len(d.keys) < maxInterned {
			d.keys[s] = s
		}
		return s, nil
	case c == '\\' || c >= utf8.RuneSelf:
		return d.strSlow(start)
	}
	return "", d.fail("in string literal")
}

// plainEnd returns the index of the first byte of b at or after i that ends
// a plain run of a string literal (a quote, a backslash, a control character
// or a byte of non-ASCII UTF-8), or len(b). It tests eight bytes at a time:
// string literals are most of what the decoder reads.
func plainEnd(b []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ (ones * '"')
		bs := x ^ (ones * '\\')
		// A byte's high bit is set in m when the byte is a quote (q's byte
		// is 0), a backslash, below 0x20 or at least 0x80. Borrows can set
		// it in bytes after the first such byte, never before it.
		m := ((q - ones) &^ q) | ((bs - ones) &^ bs) | ((x - ones*0x20) &^ x) | x
		if m &= highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return i
		}
	}
	return i
}

// strSlow handles escapes and non-ASCII; invalid UTF-8 and lone surrogates
// are errors wrapping ErrInvalidUTF8.
func (d *decoder) strSlow(start int) (string, error) {
	out := make([]byte, 0, d.i-start+16)
	out = append(out, d.b[start:d.i]...)
	for d.i < len(d.b) {
		// Copy the plain run; what stops it is a quote, a control
		// character, non-ASCII or an escape.
		end := plainEnd(d.b, d.i)
		out = append(out, d.b[d.i:end]...)
		if d.i = end; d.i == len(d.b) {
			break
		}
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), nil
		case c < 0x20:
			return "", d.fail("in string literal")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size <= 1 {
				return "", &DecodeError{Offset: d.i, Err: ErrInvalidUTF8}
			}
			out = append(out, d.b[d.i:d.i+size]...)
			d.i += size
		default: // a backslash: an escape
			d.i++
			if d.i >= len(d.b) {
				return "", errEnd
			}
			e := d.b[d.i]
			d.i++
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := d.u4()
				if !ok {
					return "", d.fail("in \\u hexadecimal character escape")
				}
				if utf16.IsSurrogate(r) {
					esc := d.i - 6
					if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
						d.i += 2
						if r2, ok := d.u4(); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								out = utf8.AppendRune(out, dec)
								continue
							}
						}
					}
					return "", &DecodeError{Offset: esc, Err: ErrInvalidUTF8}
				}
				out = utf8.AppendRune(out, r)
			default:
				d.i--
				return "", d.fail("in string escape code")
			}
		}
	}
	return "", errEnd
}

func (d *decoder) u4() (rune, bool) {
	if len(d.b)-d.i < 4 {
		d.i = len(d.b)
		return 0, false
	}
	var r rune
	for k := 0; k < 4; k++ {
		c := d.b[d.i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
		d.i++
	}
	return r, true
}

func (d *decoder) digits() int {
	n := 0
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}

func (d *decoder) number() (any, error) {
	start := d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	if d.i >= len(d.b) {
		return nil, errEnd
	}
	if d.b[d.i] == '0' {
		d.i++
	} else if d.digits() == 0 {
		return nil, d.fail("in numeric literal")
	}
	integral := true
	if d.i < len(d.b) && d.b[d.i] == '.' {
		integral = false
		d.i++
		if d.digits() == 0 {
			return nil, d.fail("after decimal point in numeric literal")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		integral = false
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return nil, d.fail("in exponent of numeric literal")
		}
	}
	s := d.b[start:d.i]
	if integral && len(s) < 19 {
		return d.boxInt(shortInt(s)), nil
	}
	if integral {
		if n, err := strconv.ParseInt(string(s), 10, 64); err == nil {
			return n, nil
		}
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return nil, fmt.Errorf("number %s out of range", s)
		}
		return nil, err
	}
	return f, nil
}

// shortInt is the value of s, an integer literal of fewer than 19 bytes
// (so it fits int64 without overflow checks).
func shortInt[T string | []byte](s T) int64 {
	var n int64
	k := 0
	if s[0] == '-' {
		k = 1
	}
	for ; k < len(s); k++ {
		n = n*10 + int64(s[k]-'0')
	}
	if s[0] == '-' {
		n = -n
	}
	return n
}
