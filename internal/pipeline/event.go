package pipeline

import (
	"slices"
	"strings"
	"time"
)

// Skip reasons label the Skipped metric: a consumed message that is neither
// a row nor an error record was skipped for one of these.
const (
	// SkipInTable: the table already holds the message's row (a restart
	// re-read it, or another member wrote it).
	SkipInTable = "already_in_table"
	// SkipDuplicate: the delta_writer's dedupe found the row's key in the
	// table (a redelivery with a new offset, a replay) or earlier in the
	// same flush.
	SkipDuplicate = "duplicate"
	// SkipFiltered: a handler filtered the message (validation's skip_if).
	SkipFiltered = "filtered"
)

// Event is one Kafka message in flight through a worker's handler chain.
//
// Fields is the message decoded once (JSON numbers as int64 when integral,
// float64 otherwise; objects as map[string]any, arrays as []any); handlers
// read and change it in place and never re-encode it. A top-level object
// that no handler reads into may be a *jsonx.RawObject instead of a map
// (the worker's rawFields; docs/architecture.md, "Objects left raw"). Values a lookup put in
// Fields may be shared with its cache: handlers replace them, never mutate
// them.
type Event struct {
	Fields map[string]any
	// Raw is the message value as consumed, Key its key.
	Raw []byte
	Key []byte
	// Topic, Partition and Offset locate the message.
	Topic     string
	Partition int32
	Offset    int64
	// Received is when the worker took the message from a poll.
	Received time.Time
	// Attempt is the failure count a failure of this message records: 1,
	// or more for a message re-injected by kpipe dlq replay.
	Attempt int
	// Errors are failures a handler recorded without dropping the event (a
	// lookup with on_error log_and_continue): each becomes an error record
	// while the event goes on down the chain.
	Errors []*HandlerError
	// kept replaces Fields once the Delta writer has buffered the event's
	// row (RetainFields): the values of the top-level fields the worker
	// reads after the commit, in the order it named them, an absent one as
	// absentField{}; nil while Fields is the event (keptPath reads both).
	kept []any
}

// absentField marks a retained field the event did not have (Event.kept).
type absentField struct{}

func isAbsent(v any) bool {
	_, ok := v.(absentField)
	return ok
}

// keepFields puts the values of m named by names into dst (len(names),
// not nil even when 0), absentField{} for a name m lacks, and returns dst.
func keepFields(dst []any, m map[string]any, names []string) []any {
	for i, k := range names {
		if v, ok := m[k]; ok {
			dst[i] = v
		} else {
			dst[i] = absentField{}
		}
	}
	return dst
}

// keptPath is a field path the worker reads after a commit, with where
// its whole path and its first element are among the retained fields
// (Event.kept); -1 where not retained.
type keptPath struct {
	path      fieldPath
	full, top int
}

func newKeptPath(p string, retained []string) keptPath {
	fp := compilePath(p)
	return keptPath{path: fp, full: slices.Index(retained, p), top: slices.Index(retained, fp.segs[0])}
}

// get is path.get of ev's fields, from Fields or, once the writer let go
// of them, from the kept values.
func (k *keptPath) get(ev *Event) (any, bool) {
	if ev.kept == nil {
		return k.path.get(ev.Fields)
	}
	if k.full >= 0 {
		if v := ev.kept[k.full]; !isAbsent(v) {
			return v, true
		}
	}
	segs := k.path.segs
	if len(segs) == 1 || k.top < 0 {
		return nil, false
	}
	top, ok := ev.kept[k.top].(map[string]any)
	if !ok {
		return nil, false
	}
	return walk(top, segs[1:])
}

// topLevel is ev's top-level field named by the whole path (no walk into
// objects), from Fields or the kept values; nil when absent.
func (k *keptPath) topLevel(ev *Event) any {
	if ev.kept == nil {
		return ev.Fields[k.path.full]
	}
	if k.full < 0 {
		return nil
	}
	if v := ev.kept[k.full]; !isAbsent(v) {
		return v
	}
	return nil
}

// Get returns the value at a dotted path ("task.assigned_to_user_id"); ok is
// false when some element is absent or not an object.
func (e *Event) Get(path string) (any, bool) { return getPath(e.Fields, path) }

// Record adds a failure that does not stop the event; see Errors.
func (e *Event) Record(err *HandlerError) { e.Errors = append(e.Errors, err) }

// fieldPath is a dotted field path split once, at build time, so that the
// per-event walk does no string scanning.
type fieldPath struct {
	full string   // the path as written
	segs []string // its elements; one for a plain field
}

func compilePath(p string) fieldPath {
	return fieldPath{full: p, segs: strings.Split(p, ".")}
}

// get is getPath(m, p.full) without splitting: a top-level key that is the
// whole dotted path wins, as in getPath.
func (p *fieldPath) get(m map[string]any) (any, bool) {
	v, ok := m[p.full]
	if ok || len(p.segs) == 1 {
		return v, ok
	}
	return walk(m, p.segs)
}

// walk follows segs (one or more) through nested objects from m.
func walk(m map[string]any, segs []string) (any, bool) {
	cur := m
	last := len(segs) - 1
	for _, k := range segs[:last] {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	v, ok := cur[segs[last]]
	return v, ok
}

// getPath walks a dotted path through nested objects.
func getPath(m map[string]any, path string) (any, bool) {
	if v, ok := m[path]; ok || strings.IndexByte(path, '.') < 0 {
		return v, ok
	}
	var cur any = m
	for path != "" {
		key := path
		if i := strings.IndexByte(path, '.'); i >= 0 {
			key, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[key]; !ok {
			return nil, false
		}
	}
	return cur, true
}
