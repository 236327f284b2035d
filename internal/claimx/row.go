package claimx

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"kpipe/internal/httpconn"
	"kpipe/internal/jsonx"
)

// Row is one ClaimX entity (task assignment, project, template) exactly as
// the API returned it. Every field is kept, known or not. Numbers are int64
// when integral and float64 otherwise; nested objects are Row-compatible
// map[string]any values and arrays are []any.
type Row map[string]any

// DecodeRow decodes a JSON object into a Row with jsonx.DecodeObject,
// keeping integers exact. Every error wraps httpconn.ErrMalformedBody, as
// the Client's do.
func DecodeRow(b []byte) (Row, error) {
	m, err := jsonx.DecodeObject(b, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", httpconn.ErrMalformedBody, err)
	}
	return Row(m), nil
}

// Get returns the value at a dotted path ("form_response.answers.photos").
func (r Row) Get(path string) (any, bool) {
	var cur any = map[string]any(r)
	for path != "" {
		key := path
		if i := strings.IndexByte(path, '.'); i >= 0 {
			key, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		m, ok := asMap(cur)
		if !ok {
			return nil, false
		}
		if cur, ok = m[key]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case Row:
		return m, true
	}
	return nil, false
}

// Int64 returns the integer at path. Integral floats, json.Number and numeric
// strings count; null, absent and other types do not.
func (r Row) Int64(path string) (int64, bool) {
	v, ok := r.Get(path)
	if !ok {
		return 0, false
	}
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true
		}
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}

// String returns the string at path; numbers are formatted (project ids are
// strings in events and sometimes numbers in rows). Null and absent are not
// strings.
func (r Row) String(path string) (string, bool) {
	v, ok := r.Get(path)
	if !ok {
		return "", false
	}
	switch s := v.(type) {
	case string:
		return s, true
	case int64:
		return strconv.FormatInt(s, 10), true
	case int:
		return strconv.Itoa(s), true
	case float64:
		return strconv.FormatFloat(s, 'f', -1, 64), true
	case json.Number:
		return s.String(), true
	case bool:
		return strconv.FormatBool(s), true
	}
	return "", false
}

// Time returns the RFC 3339 timestamp at path, in UTC.
func (r Row) Time(path string) (time.Time, bool) {
	s, ok := r.Get(path)
	if !ok {
		return time.Time{}, false
	}
	str, ok := s.(string)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, str)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// Map returns the object at path as a Row.
func (r Row) Map(path string) (Row, bool) {
	v, ok := r.Get(path)
	if !ok {
		return nil, false
	}
	m, ok := asMap(v)
	return Row(m), ok
}
