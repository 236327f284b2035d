package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// CurrentTimestamp as a transform default is replaced by the processing time.
const CurrentTimestamp = "${CURRENT_TIMESTAMP}"

// TransformConfig configures the transform handler.
type TransformConfig struct {
	// Mappings set field ← source path: each key becomes a field of the event
	// holding the value at the dotted source path ("task.created_at"), or
	// null when the path is absent. Other fields stay as they are.
	Mappings map[string]string `yaml:"mappings"`
	// Defaults set fields that are absent or null after the mappings. The
	// string ${CURRENT_TIMESTAMP} means the processing time (UTC).
	Defaults map[string]any `yaml:"defaults"`
}

// Validate implements Validator.
func (c *TransformConfig) Validate() error {
	var errs []error
	if len(c.Mappings) == 0 && len(c.Defaults) == 0 {
		errs = append(errs, errors.New("transform needs mappings or defaults"))
	}
	for to, from := range c.Mappings {
		if to == "" || strings.TrimSpace(from) == "" || strings.HasPrefix(from, ".") || strings.HasSuffix(from, ".") || strings.Contains(from, "..") {
			errs = append(errs, fmt.Errorf("mappings: %q: %q is not a field path", to, from))
		}
	}
	return errors.Join(errs...)
}

// Transform maps fields by path and fills defaults, in place.
type Transform struct {
	mappings []mapping
	defaults []fieldDefault
	now      func() time.Time
}

type mapping struct{ to, from string }

type fieldDefault struct {
	field string
	value any
	now   bool
}

var transformFactory = TypedFactory(nil, func(cfg *TransformConfig, deps Deps) (Handler, error) {
	return NewTransform(cfg, deps.Now), nil
})

// NewTransform returns a transform; now is the processing clock (time.Now
// when nil).
func NewTransform(cfg *TransformConfig, now func() time.Time) *Transform {
	if now == nil {
		now = time.Now
	}
	t := &Transform{now: now}
	for to, from := range cfg.Mappings {
		t.mappings = append(t.mappings, mapping{to: to, from: from})
	}
	// Fixed order so that mappings reading each other behave the same on
	// every run: sources are read before any target is written.
	sort.Slice(t.mappings, func(i, j int) bool { return t.mappings[i].to < t.mappings[j].to })
	for f, v := range cfg.Defaults {
		d := fieldDefault{field: f, value: normalizeYAML(v)}
		if s, ok := v.(string); ok && s == CurrentTimestamp {
			d.now = true
		}
		t.defaults = append(t.defaults, d)
	}
	sort.Slice(t.defaults, func(i, j int) bool { return t.defaults[i].field < t.defaults[j].field })
	return t
}

// Handle implements Handler.
func (t *Transform) Handle(_ context.Context, ev *Event) ([]*Event, error) {
	if ev.Fields == nil {
		ev.Fields = make(map[string]any, len(t.mappings)+len(t.defaults))
	}
	var buf [24]any
	vals := buf[:0]
	for _, m := range t.mappings {
		v, _ := getPath(ev.Fields, m.from)
		vals = append(vals, v)
	}
	for i, m := range t.mappings {
		ev.Fields[m.to] = vals[i]
	}
	var now time.Time
	for _, d := range t.defaults {
		if v, ok := ev.Fields[d.field]; ok && v != nil {
			continue
		}
		if d.now {
			if now.IsZero() {
				now = t.now().UTC()
			}
			ev.Fields[d.field] = now
			continue
		}
		ev.Fields[d.field] = d.value
	}
	return []*Event{ev}, nil
}

// Close implements Handler.
func (t *Transform) Close(context.Context) error { return nil }

// normalizeYAML turns the numbers of a decoded YAML value into int64 and
// float64, the types decoded events use, so comparisons and defaults behave
// alike.
func normalizeYAML(v any) any {
	switch n := v.(type) {
	case int:
		return int64(n)
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case uint:
		return int64(n)
	case uint8:
		return int64(n)
	case uint16:
		return int64(n)
	case uint32:
		return int64(n)
	case uint64:
		if n <= 1<<63-1 {
			return int64(n)
		}
		return float64(n)
	case float32:
		return float64(n)
	case []any:
		out := make([]any, len(n))
		for i, e := range n {
			out[i] = normalizeYAML(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(n))
		for k, e := range n {
			out[k] = normalizeYAML(e)
		}
		return out
	}
	return v
}

var _ Handler = (*Transform)(nil)
