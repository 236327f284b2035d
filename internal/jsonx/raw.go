package jsonx

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// RawObject is a JSON object of a message that DecodeOptions.Lazy left
// undecoded: the decoder checked it (syntax, UTF-8, depth, number range),
// so reading it again cannot fail. It is immutable: With returns a copy.
//
// Map decodes it into what DecodeObject would have given for it; Reader
// reads it value by value without building maps, for a consumer that only
// walks it once (the Delta writer shredding it into columns).
type RawObject struct {
	src      string // the message, shared by every RawObject of it
	off, end int    // the object is src[off:end]
	// set are members set over the object by With, in the order set: each
	// replaces a member of the same key, or adds one.
	set []Member
}

// Member is one key and value of an object.
type Member struct {
	Key   string
	Value any
}

// NewRawObject checks that s is one JSON object (as DecodeObject checks,
// nesting up to DefaultMaxDepth) and returns it as a RawObject. It checks
// without building the object: it allocates only the RawObject.
func NewRawObject(s string) (*RawObject, error) {
	d := getDecoder(unsafeBytes(s), 0, s)
	defer putDecoder(d)
	d.maxDepth = DefaultMaxDepth
	if err := d.openTop(); err != nil {
		return nil, err
	}
	off := d.i
	if err := d.skipObject(1); err != nil {
		return nil, err
	}
	end := d.i
	if err := d.closeTop(); err != nil {
		return nil, err
	}
	return &RawObject{src: s, off: off, end: end}, nil
}

// Set returns the members With set over the object, in the order set; a
// member whose key repeats is replaced in place. The slice must not be
// changed.
func (r *RawObject) Set() []Member { return r.set }

// With returns a copy of r with key set to v, replacing a member of the
// same key.
func (r *RawObject) With(key string, v any) *RawObject {
	c := *r
	c.set = make([]Member, len(r.set), len(r.set)+1)
	copy(c.set, r.set)
	for i := range c.set {
		if c.set[i].Key == key {
			c.set[i].Value = v
			return &c
		}
	}
	c.set = append(c.set, Member{Key: key, Value: v})
	return &c
}

// Map decodes the object with its set members applied: the values
// DecodeObject gives (a set value that is itself a *RawObject is decoded
// too). Each call returns a new map.
func (r *RawObject) Map() map[string]any {
	v, _, err := decodeAt(r.src, r.off)
	if err != nil {
		// The decoder checked these bytes; this is a bug.
		panic(fmt.Sprintf("jsonx: RawObject that does not decode: %v", err))
	}
	m := v.(map[string]any)
	for _, s := range r.set {
		m[s.Key] = Materialize(s.Value)
	}
	return m
}

// Materialize returns v with every *RawObject in it, at any depth of its
// maps and slices, decoded by Map; v itself is not changed (a map or slice
// holding a RawObject is copied).
func Materialize(v any) any {
	m, _ := materialize(v)
	return m
}

// MaterializeMap is Materialize of a map, and whether it held a
// RawObject: m itself when it held none.
func MaterializeMap(m map[string]any) (map[string]any, bool) {
	v, changed := materialize(m)
	return v.(map[string]any), changed
}

// materialize is Materialize, and whether the result differs from v.
func materialize(v any) (any, bool) {
	switch t := v.(type) {
	case *RawObject:
		return t.Map(), true
	case map[string]any:
		var out map[string]any
		for k, e := range t {
			m, changed := materialize(e)
			if !changed {
				continue
			}
			if out == nil {
				out = make(map[string]any, len(t))
				for k2, e2 := range t {
					out[k2] = e2
				}
			}
			out[k] = m
		}
		if out != nil {
			return out, true
		}
	case []any:
		var out []any
		for i, e := range t {
			m, changed := materialize(e)
			if !changed {
				continue
			}
			if out == nil {
				out = append([]any(nil), t...)
			}
			out[i] = m
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}

// Reader returns a reader positioned before the object (its set members
// are not in what it reads: Set lists them).
func (r *RawObject) Reader() Reader { return Reader{s: r.src[:r.end], i: r.off} }

// Kind is the type of the next value of a Reader.
type Kind uint8

// The kinds of JSON values.
const (
	KindInvalid Kind = iota // at the end, or after an error
	KindNull
	KindBool
	KindNumber
	KindString
	KindObject
	KindArray
)

// errReader is the Reader's error for a call that does not fit the input
// (a bug of its user: the input was checked when decoded).
var errReader = errors.New("jsonx: Reader call does not fit the input")

// Reader reads a checked JSON value piece by piece, without building maps:
// Kind tells what comes next, Object and Key walk an object, Array and
// Elem an array, and String, Number, Bool, Null, Value or Skip read a
// value. Strings without escapes are substrings of the message; numbers
// follow DecodeObject (int64 when integral and in range, float64
// otherwise). A call that does not fit the input sets Err and makes Kind
// KindInvalid from then on.
type Reader struct {
	s   string
	i   int
	err error
}

// Err returns the first misuse, or nil.
func (rd *Reader) Err() error { return rd.err }

func (rd *Reader) ws() {
	for rd.i < len(rd.s) && isSpace(rd.s[rd.i]) {
		rd.i++
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (rd *Reader) misuse() {
	if rd.err == nil {
		rd.err = errReader
	}
	rd.i = len(rd.s)
}

// Kind returns the kind of the next value.
func (rd *Reader) Kind() Kind {
	rd.ws()
	if rd.err != nil || rd.i >= len(rd.s) {
		return KindInvalid
	}
	switch c := rd.s[rd.i]; {
	case c == '{':
		return KindObject
	case c == '[':
		return KindArray
	case c == '"':
		return KindString
	case c == 't' || c == 'f':
		return KindBool
	case c == 'n':
		return KindNull
	case c == '-' || (c >= '0' && c <= '9'):
		return KindNumber
	}
	return KindInvalid
}

// Object consumes the '{' of the next value.
func (rd *Reader) Object() {
	if rd.Kind() != KindObject {
		rd.misuse()
		return
	}
	rd.i++
}

// Key returns the next key of the object being read, positioned before its
// value; ok is false at the object's end (consumed).
func (rd *Reader) Key() (key string, ok bool) {
	rd.ws()
	if rd.i < len(rd.s) && rd.s[rd.i] == ',' {
		rd.i++
		rd.ws()
	}
	if rd.err != nil || rd.i >= len(rd.s) {
		rd.misuse()
		return "", false
	}
	if rd.s[rd.i] == '}' {
		rd.i++
		return "", false
	}
	if rd.s[rd.i] != '"' {
		rd.misuse()
		return "", false
	}
	key = rd.String()
	rd.ws()
	if rd.i >= len(rd.s) || rd.s[rd.i] != ':' {
		rd.misuse()
		return "", false
	}
	rd.i++
	return key, rd.err == nil
}

// Array consumes the '[' of the next value.
func (rd *Reader) Array() {
	if rd.Kind() != KindArray {
		rd.misuse()
		return
	}
	rd.i++
}

// Elem reports whether another element of the array being read follows,
// positioned before it; false at the array's end (consumed).
func (rd *Reader) Elem() bool {
	rd.ws()
	if rd.i < len(rd.s) && rd.s[rd.i] == ',' {
		rd.i++
		rd.ws()
	}
	if rd.err != nil || rd.i >= len(rd.s) {
		rd.misuse()
		return false
	}
	if rd.s[rd.i] == ']' {
		rd.i++
		return false
	}
	return true
}

// String reads a string value (or key). The result is valid UTF-8: the
// input was checked when decoded.
func (rd *Reader) String() string {
	if rd.Kind() != KindString {
		rd.misuse()
		return ""
	}
	b := unsafeBytes(rd.s)
	start := rd.i + 1
	for j := start; ; j++ {
		j = plainEnd(b, j)
		if j == len(b) {
			break
		}
		switch c := b[j]; {
		case c == '"':
			rd.i = j + 1
			return rd.s[start:j]
		case c >= utf8.RuneSelf:
			continue // checked: valid UTF-8
		}
		// An escape (or, in input that was not checked, a control
		// character): decode it as the decoder does, which fails on the
		// latter.
		v, next, err := decodeAt(rd.s, rd.i)
		if err != nil {
			break
		}
		rd.i = next
		return v.(string)
	}
	rd.misuse()
	return ""
}

// Number reads a number: n when integral and in int64's range (isInt),
// else f.
func (rd *Reader) Number() (n int64, f float64, isInt bool) {
	if rd.Kind() != KindNumber {
		rd.misuse()
		return 0, 0, false
	}
	start := rd.i
	j := start
	if rd.s[j] == '-' {
		j++
	}
	integral := true
	for ; j < len(rd.s); j++ {
		c := rd.s[j]
		if c >= '0' && c <= '9' {
			continue
		}
		if c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
			integral = false
			continue
		}
		break
	}
	rd.i = j
	s := rd.s[start:j]
	if integral && len(s) < 19 {
		return shortInt(s), 0, true
	}
	if integral {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, 0, true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		rd.misuse()
	}
	return 0, f, false
}

// Bool reads true or false.
func (rd *Reader) Bool() bool {
	if rd.Kind() != KindBool {
		rd.misuse()
		return false
	}
	if rd.s[rd.i] == 't' {
		rd.i += len("true")
		return true
	}
	rd.i += len("false")
	return false
}

// Null reads null.
func (rd *Reader) Null() {
	if rd.Kind() != KindNull {
		rd.misuse()
		return
	}
	rd.i += len("null")
}

// Value reads the next value as DecodeObject would have decoded it.
func (rd *Reader) Value() any {
	if rd.Kind() == KindInvalid {
		rd.misuse()
		return nil
	}
	v, next, err := decodeAt(rd.s, rd.i)
	if err != nil {
		rd.misuse()
		return nil
	}
	rd.i = next
	return v
}

// Skip reads past the next value.
func (rd *Reader) Skip() {
	switch rd.Kind() {
	case KindObject:
		rd.Object()
		for {
			if _, ok := rd.Key(); !ok {
				return
			}
			rd.Skip()
		}
	case KindArray:
		rd.Array()
		for rd.Elem() {
			rd.Skip()
		}
	case KindString:
		_ = rd.String()
	case KindNumber:
		rd.Number()
	case KindBool:
		rd.Bool()
	case KindNull:
		rd.Null()
	default:
		rd.misuse()
	}
}

// unsafeBytes is s's bytes without a copy; the decoder only reads them.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// decodeAt decodes the value at src[i:] and returns it and the offset
// after it; strings are substrings of src.
func decodeAt(src string, i int) (any, int, error) {
	d := getDecoder(unsafeBytes(src), i, src)
	defer putDecoder(d)
	d.maxDepth = hardMaxDepth
	v, err := d.value(0)
	return v, d.i, err
}

// lazyValue is value for a key of DecodeOptions.Lazy at depth: an object
// is checked and returned as a *RawObject, anything else decodes as usual.
func (d *decoder) lazyValue(depth int) (any, error) {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return d.value(depth)
	}
	if depth >= d.maxDepth {
		return nil, &DecodeError{Offset: d.i, Err: ErrTooDeep}
	}
	start := d.i
	if err := d.skipObject(depth + 1); err != nil {
		return nil, err
	}
	if d.src == "" {
		d.src = string(d.b)
	}
	return &RawObject{src: d.src, off: start, end: d.i}, nil
}

// skipValue checks the value at d.i as value(depth) would decode it,
// without building it.
func (d *decoder) skipValue(depth int) error {
	d.ws()
	if d.i >= len(d.b) {
		return errEnd
	}
	switch c := d.b[d.i]; {
	case c == '{':
		if depth >= d.maxDepth {
			return &DecodeError{Offset: d.i, Err: ErrTooDeep}
		}
		return d.skipObject(depth + 1)
	case c == '[':
		if depth >= d.maxDepth {
			return &DecodeError{Offset: d.i, Err: ErrTooDeep}
		}
		return d.skipArray(depth + 1)
	case c == '"':
		return d.skipString()
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := d.number()
		return err
	case c == 't':
		return d.lit("true")
	case c == 'f':
		return d.lit("false")
	case c == 'n':
		return d.lit("null")
	}
	return d.fail("looking for beginning of value")
}

func (d *decoder) skipObject(depth int) error {
	d.i++ // {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return nil
	}
	for {
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return d.fail("looking for beginning of object key string")
		}
		if err := d.skipString(); err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return d.fail("after object key")
		}
		d.i++
		if err := d.skipValue(depth); err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.b) {
			return errEnd
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.fail("after object key:value pair")
		}
	}
}

func (d *decoder) skipArray(depth int) error {
	d.i++ // [
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return nil
	}
	for {
		if err := d.skipValue(depth); err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.b) {
			return errEnd
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return d.fail("after array element")
		}
	}
}

// skipString checks a string literal as str would decode it: plain ASCII
// is scanned here, anything else goes through strSlow, which has the
// checks of escapes, UTF-8 and surrogates.
func (d *decoder) skipString() error {
	d.i++ // "
	start := d.i
	d.i = plainEnd(d.b, d.i)
	if d.i >= len(d.b) {
		return errEnd
	}
	switch c := d.b[d.i]; {
	case c == '"':
		d.i++
		return nil
	case c == '\\' || c >= utf8.RuneSelf:
		_, err := d.strSlow(start)
		return err
	}
	return d.fail("in string literal")
}

// Text returns the object's JSON text, without its set members.
func (r *RawObject) Text() string { return r.src[r.off:r.end] }

// ReaderAt returns a reader of r positioned at pos, a position that a
// Reader of r gave by Offset (before a value).
func (r *RawObject) ReaderAt(pos int) Reader { return Reader{s: r.src[:r.end], i: pos} }

// Offset returns the reader's position in the object's message, for
// RawObject.ReaderAt: after Key, that of the key's value.
func (rd *Reader) Offset() int { return rd.i }
