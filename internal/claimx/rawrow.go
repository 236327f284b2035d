package claimx

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"kpipe/internal/httpconn"
	"kpipe/internal/jsonx"
)

// RawRow is a Row kept as its JSON text, compacted, with the positions of
// its top-level members: what a cache of many rows holds. A task
// assignment of the simulator's (1.4 KB of JSON) costs about 2 KB this way
// against 5 KB as a Row's maps, plus 1.6 KB more for the JSON encoding a
// payload embeds (BenchmarkRowMemory).
//
// Its accessors give what the same accessors of the Row that DecodeRow
// makes of the text give (TestRawRowEqualsRow), reading the member's value
// from the text: a top-level member is found by its key, a nested one by
// walking the objects on its path. Its methods are safe for concurrent use,
// and a nil *RawRow is an empty row.
type RawRow struct {
	obj     *jsonx.RawObject
	members []rawMember // top-level, in the text's order
}

type rawMember struct {
	key string // a substring of the text when it has no escapes
	pos int    // the value's position, for RawObject.ReaderAt
}

// DecodeRawRow checks that b is one JSON object as DecodeRow does and
// keeps it as a RawRow, compacted (b is not retained). Every error wraps
// httpconn.ErrMalformedBody, as DecodeRow's do.
func DecodeRawRow(b []byte) (*RawRow, error) {
	obj, err := jsonx.NewRawObject(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", httpconn.ErrMalformedBody, err)
	}
	if text, spaced := compact(obj.Text()); spaced || len(text) != len(b) {
		if !spaced {
			text = strings.Clone(text) // space only around the object
		}
		if obj, err = jsonx.NewRawObject(text); err != nil {
			// Removing space between tokens of a checked object cannot
			// make it invalid; this is a bug.
			panic(fmt.Sprintf("claimx: compacting a checked row: %v", err))
		}
	}
	var buf [64]rawMember
	members := buf[:0]
	rd := obj.Reader()
	rd.Object()
	for {
		key, ok := rd.Key()
		if !ok {
			break
		}
		members = append(members, rawMember{key: key, pos: rd.Offset()})
		rd.Skip()
	}
	if err := rd.Err(); err != nil {
		// NewRawObject checked the text; this is a bug.
		panic(fmt.Sprintf("claimx: indexing a checked row: %v", err))
	}
	// Exactly as long as needed: the row is kept for long.
	return &RawRow{obj: obj, members: slices.Clone(members)}, nil
}

// compact returns checked JSON text without the space between its tokens,
// and whether it had any.
func compact(text string) (string, bool) {
	var out []byte
	in := false // in a string
	for i := 0; i < len(text); i++ {
		c := text[i]
		if in {
			switch c {
			case '\\': // checked: a byte follows, which may be a quote
				if out != nil {
					out = append(out, c, text[i+1])
				}
				i++
				continue
			case '"':
				in = false
			}
		} else {
			switch c {
			case '"':
				in = true
			case ' ', '\t', '\n', '\r':
				if out == nil {
					out = append(make([]byte, 0, len(text)), text[:i]...)
				}
				continue
			}
		}
		if out != nil {
			out = append(out, c)
		}
	}
	if out == nil {
		return text, false
	}
	return string(out), true
}

// RawRowOf encodes r and keeps it as a RawRow, for a row built in code.
func RawRowOf(r Row) (*RawRow, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return DecodeRawRow(b)
}

// JSON returns the row's JSON text, compacted ("null" for a nil row).
func (r *RawRow) JSON() string {
	if r == nil {
		return "null"
	}
	return r.obj.Text()
}

// Row decodes the whole row (a new Row each call; nil for a nil row).
func (r *RawRow) Row() Row {
	if r == nil {
		return nil
	}
	return Row(r.obj.Map())
}

// Has reports whether the row has a top-level member key, null or not.
func (r *RawRow) Has(key string) bool {
	_, ok := r.top(key)
	return ok
}

// top returns the position of the value of the top-level member key: the
// last of that key, as decoding keeps the last.
func (r *RawRow) top(key string) (int, bool) {
	if r == nil {
		return 0, false
	}
	for i := len(r.members) - 1; i >= 0; i-- {
		if r.members[i].key == key {
			return r.members[i].pos, true
		}
	}
	return 0, false
}

// find returns a reader positioned at the value at a dotted path, split as
// Row.Get splits it ("" is the whole row).
func (r *RawRow) find(path string) (jsonx.Reader, bool) {
	if r == nil {
		return jsonx.Reader{}, false
	}
	rd := r.obj.Reader()
	for first := true; path != ""; first = false {
		key := path
		if i := strings.IndexByte(path, '.'); i >= 0 {
			key, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		pos, ok := 0, false
		if first {
			pos, ok = r.top(key)
		} else {
			if rd.Kind() != jsonx.KindObject {
				return jsonx.Reader{}, false
			}
			rd.Object()
			for {
				k, more := rd.Key()
				if !more {
					break
				}
				if k == key {
					pos, ok = rd.Offset(), true
				}
				rd.Skip()
			}
		}
		if !ok {
			return jsonx.Reader{}, false
		}
		rd = r.obj.ReaderAt(pos)
	}
	return rd, true
}

// Get returns the value at a dotted path as Row.Get does: objects as
// map[string]any, arrays as []any, numbers as int64 or float64.
func (r *RawRow) Get(path string) (any, bool) {
	rd, ok := r.find(path)
	if !ok {
		return nil, false
	}
	return rd.Value(), true
}

// Int64 returns the integer at path, as Row.Int64 does.
func (r *RawRow) Int64(path string) (int64, bool) {
	rd, ok := r.find(path)
	if !ok {
		return 0, false
	}
	switch rd.Kind() {
	case jsonx.KindNumber:
		n, f, isInt := rd.Number()
		if isInt {
			return n, true
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), true
		}
	case jsonx.KindString:
		i, err := strconv.ParseInt(rd.String(), 10, 64)
		return i, err == nil
	}
	return 0, false
}

// String returns the string at path, numbers and booleans formatted, as
// Row.String does.
func (r *RawRow) String(path string) (string, bool) {
	rd, ok := r.find(path)
	if !ok {
		return "", false
	}
	switch rd.Kind() {
	case jsonx.KindString:
		return rd.String(), true
	case jsonx.KindNumber:
		n, f, isInt := rd.Number()
		if isInt {
			return strconv.FormatInt(n, 10), true
		}
		return strconv.FormatFloat(f, 'f', -1, 64), true
	case jsonx.KindBool:
		return strconv.FormatBool(rd.Bool()), true
	}
	return "", false
}

// Time returns the RFC 3339 timestamp at path, in UTC, as Row.Time does.
func (r *RawRow) Time(path string) (time.Time, bool) {
	rd, ok := r.find(path)
	if !ok || rd.Kind() != jsonx.KindString {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, rd.String())
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}
