package pipeline

import (
	"strings"

	"kpipe/internal/config"
	"kpipe/internal/jsonx"
)

// fieldUse is what a handler does with an event's fields, for rawFields:
// the top-level fields it only passes along whole (copies to another field,
// writes to a column, sets one member of), and the paths it reads into or
// compares (a dotted path, a required field, a rule, a lookup parameter).
type fieldUse struct {
	whole  []string
	inside []string
	// copies are [to, from] pairs of top-level fields a handler copies
	// whole (a transform mapping): when to is read inside, from must be
	// decoded.
	copies [][2]string
}

// fieldUser is implemented by the handlers that can say what they do with
// an event's fields (fieldUse). ok is false when they cannot (an
// expression that may read any field).
type fieldUser interface {
	fieldUse() (u fieldUse, ok bool)
}

// rawFields returns the top-level fields the worker may decode as
// *jsonx.RawObject when they hold an object: fields some handler passes
// along whole and none reads into, compares, or needs as a plain value
// (the success records' fields, status_field). Decoding such an object
// costs a check of its bytes instead of building its maps, and the Delta
// writer shreds it into its columns straight from the bytes. The rows are
// the same either way. It is nil (decode everything) when any handler does
// not say what it reads.
func rawFields(c *Chain, cfg *config.Worker) map[string]bool {
	whole := map[string]bool{}
	inside := map[string]bool{}
	var copies [][2]string
	for _, st := range c.stages {
		fu, ok := st.h.(fieldUser)
		if !ok {
			return nil
		}
		u, ok := fu.fieldUse()
		if !ok {
			return nil
		}
		for _, f := range u.whole {
			whole[f] = true
		}
		for _, p := range u.inside {
			inside[topField(p)] = true
		}
		copies = append(copies, u.copies...)
	}
	for _, f := range cfg.SuccessRecord.Fields {
		inside[topField(f)] = true
	}
	if cfg.StatusField != "" {
		inside[topField(cfg.StatusField)] = true
	}
	for changed := true; changed; {
		changed = false
		for _, c := range copies {
			if inside[c[0]] && !inside[c[1]] {
				inside[c[1]] = true
				changed = true
			}
		}
	}
	out := map[string]bool{}
	for f := range whole {
		if !inside[f] {
			out[f] = true
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// topField is the first element of a dotted path.
func topField(p string) string {
	if i := strings.IndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return p
}

// add sorts paths into whole fields (no dot) and paths read inside.
func (u *fieldUse) add(paths ...string) {
	for _, p := range paths {
		if strings.IndexByte(p, '.') < 0 {
			u.whole = append(u.whole, p)
		} else {
			u.inside = append(u.inside, p)
		}
	}
}

// fieldUse implements fieldUser: sources are read whole or inside as
// their paths say; a dotted target sets one member of its parent, which
// setPath does on a RawObject too (jsonx.RawObject.With) when the parent
// is a top-level field; a deeper one reads into the parent.
func (t *Transform) fieldUse() (fieldUse, bool) {
	var u fieldUse
	for _, m := range t.mappings {
		u.add(m.from)
		if !strings.Contains(m.from, ".") {
			u.copies = append(u.copies, [2]string{topField(m.to), m.from})
		}
		switch {
		case len(m.target) == 2:
			u.whole = append(u.whole, m.target[0])
		case len(m.target) > 2:
			u.inside = append(u.inside, m.to)
		}
	}
	return u, true
}

// fieldUse implements fieldUser: every field validation names is read
// inside (rules compare values); skip_if may read anything.
func (v *Validation) fieldUse() (fieldUse, bool) {
	if v.skipIf != nil {
		return fieldUse{}, false
	}
	var u fieldUse
	for _, p := range v.required {
		u.inside = append(u.inside, p.full)
	}
	for _, r := range v.rules {
		u.inside = append(u.inside, r.path.full)
	}
	return u, true
}

// fieldUse implements fieldUser: the parameters are read as values.
func (l *Lookup) fieldUse() (fieldUse, bool) {
	var u fieldUse
	for _, p := range l.parts {
		if p.field != "" {
			u.inside = append(u.inside, p.path.full)
		}
	}
	for _, q := range l.query {
		u.inside = append(u.inside, q.path.full)
	}
	return u, true
}

// fieldUse implements fieldUser: a column's field is written whole (the
// table takes a RawObject wherever it takes an object).
func (w *DeltaWriter) fieldUse() (fieldUse, bool) {
	var u fieldUse
	for _, c := range w.columns {
		u.add(c.from)
	}
	return u, true
}

// setMember sets key to v inside the object parent: a map is changed in
// place, a RawObject replaced by a copy with the member set (it is
// shared). It reports whether parent was an object.
func setMember(m map[string]any, parent, key string, v any) bool {
	switch p := m[parent].(type) {
	case map[string]any:
		p[key] = v
	case *jsonx.RawObject:
		m[parent] = p.With(key, v)
	default:
		return false
	}
	return true
}

var (
	_ fieldUser = (*Transform)(nil)
	_ fieldUser = (*Validation)(nil)
	_ fieldUser = (*Lookup)(nil)
	_ fieldUser = (*DeltaWriter)(nil)
)
