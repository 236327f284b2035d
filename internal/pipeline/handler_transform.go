package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"kpipe/internal/config"
	"kpipe/internal/delta"
)

// TransformConfig configures the transform handler.
type TransformConfig struct {
	// Mappings set field ← source path: each key becomes a field of the event
	// holding the value at the dotted source path ("task.created_at"), or
	// null when the path is absent. A dotted key ("task.fetched_at") sets
	// that field inside the object at its parent path, after the undotted
	// mappings; it does nothing when the parent is absent or not an object.
	// Other fields stay as they are.
	Mappings map[string]string `yaml:"mappings"`
	// Defaults set fields that are absent or null after the mappings. The
	// string ${CURRENT_TIMESTAMP} (config.CurrentTimestamp) means the
	// processing time (UTC).
	Defaults map[string]any `yaml:"defaults"`
}

// Validate implements Validator.
func (c *TransformConfig) Validate() error {
	var errs []error
	if len(c.Mappings) == 0 && len(c.Defaults) == 0 {
		errs = append(errs, errors.New("transform needs mappings or defaults"))
	}
	for to, from := range c.Mappings {
		if !isFieldPath(to) || !isFieldPath(from) {
			errs = append(errs, fmt.Errorf("mappings: %q: %q is not a field path", to, from))
		}
	}
	return errors.Join(errs...)
}

func isFieldPath(p string) bool {
	return strings.TrimSpace(p) != "" && !strings.HasPrefix(p, ".") && !strings.HasSuffix(p, ".") && !strings.Contains(p, "..")
}

// Transform maps fields by path and fills defaults, in place.
type Transform struct {
	mappings []mapping
	defaults []fieldDefault
	now      func() time.Time
}

// mapping is one field ← path pair with the path compiled.
type mapping struct {
	to, from string
	path     fieldPath
	// cast is the delta_writer's conversion for the column (casts).
	cast delta.Cast
	// target is the compiled to, when it is dotted (a transform's field
	// inside an object).
	target []string
}

func newMapping(to, from string) mapping {
	return mapping{to: to, from: from, path: compilePath(from)}
}

// setPath sets the field at the dotted path segs inside m's nested
// objects; it does nothing when a parent is absent or not an object. A
// top-level parent may be a *jsonx.RawObject (rawFields).
func setPath(m map[string]any, segs []string, v any) {
	if len(segs) == 2 {
		setMember(m, segs[0], segs[1], v)
		return
	}
	cur := m
	for _, k := range segs[:len(segs)-1] {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return
		}
		cur = next
	}
	cur[segs[len(segs)-1]] = v
}

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
		m := newMapping(to, from)
		if strings.Contains(to, ".") {
			m.target = strings.Split(to, ".")
		}
		t.mappings = append(t.mappings, m)
	}
	// Fixed order so that mappings reading each other behave the same on
	// every run: sources are read before any target is written, and
	// dotted targets are set after the fields that hold them.
	sort.Slice(t.mappings, func(i, j int) bool {
		a, b := t.mappings[i], t.mappings[j]
		if (a.target == nil) != (b.target == nil) {
			return a.target == nil
		}
		return a.to < b.to
	})
	for f, v := range cfg.Defaults {
		d := fieldDefault{field: f, value: normalizeYAML(v)}
		if s, ok := v.(string); ok && s == config.CurrentTimestamp {
			d.now = true
		}
		t.defaults = append(t.defaults, d)
	}
	sort.Slice(t.defaults, func(i, j int) bool { return t.defaults[i].field < t.defaults[j].field })
	return t
}

// Handle implements Handler.
func (t *Transform) Handle(_ context.Context, ev *Event) ([]*Event, error) {
	var now any
	t.apply(ev, &now)
	return []*Event{ev}, nil
}

// HandleBatch implements BatchHandler. The batch shares one processing time
// (${CURRENT_TIMESTAMP}), taken when the first event needs it.
func (t *Transform) HandleBatch(_ context.Context, evs []*Event) ([]Result, error) {
	results := make([]Result, len(evs))
	var now any
	for i, ev := range evs {
		t.apply(ev, &now)
		results[i].Events = evs[i : i+1 : i+1]
	}
	return results, nil
}

// apply transforms ev; *now is the boxed processing time, set on first use.
func (t *Transform) apply(ev *Event, now *any) {
	if ev.Fields == nil {
		ev.Fields = make(map[string]any, len(t.mappings)+len(t.defaults))
	}
	var buf [24]any
	vals := buf[:0]
	for i := range t.mappings {
		v, _ := t.mappings[i].path.get(ev.Fields)
		vals = append(vals, v)
	}
	for i, m := range t.mappings {
		if m.target != nil {
			setPath(ev.Fields, m.target, vals[i])
			continue
		}
		ev.Fields[m.to] = vals[i]
	}
	for _, d := range t.defaults {
		if v, ok := ev.Fields[d.field]; ok && v != nil {
			continue
		}
		if d.now {
			if *now == nil {
				*now = t.now().UTC()
			}
			ev.Fields[d.field] = *now
			continue
		}
		ev.Fields[d.field] = d.value
	}
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

var (
	_ Handler      = (*Transform)(nil)
	_ BatchHandler = (*Transform)(nil)
)
