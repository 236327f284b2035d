package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// errNotObject is the cause of a malformed message that is JSON but not an
// object.
var errNotObject = errors.New("message is not a JSON object")

// DecodeJSON decodes a JSON object the way events are decoded: numbers are
// int64 when integral (and in range), float64 otherwise.
func DecodeJSON(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("data after the JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errNotObject
	}
	fixNumbers(m)
	return m, nil
}

func fixNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			switch e.(type) {
			case json.Number, map[string]any, []any:
				t[k] = fixNumbers(e)
			}
		}
	case []any:
		for i, e := range t {
			t[i] = fixNumbers(e)
		}
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i
		}
		f, _ := strconv.ParseFloat(string(t), 64)
		return f
	}
	return v
}
