package pipeline

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"kpipe/internal/config"
)

// FuzzKeptPath checks that a field read from an event the Delta writer
// buffered (its kept values, Event.kept) is what the same path reads from
// its whole fields: every path of the success record and the status field,
// whatever the event holds.
func FuzzKeptPath(f *testing.F) {
	f.Add("task.status", "a.b.c", "task_status", uint8(0))
	f.Add("task.status", "task", "", uint8(1))
	f.Add("x", "x.y", "x.y.z", uint8(2))
	f.Add("a..b", ".", "a.", uint8(3))
	f.Add("gone.x", "task.status.deeper", "task.status", uint8(4))
	f.Fuzz(func(t *testing.T, p1, p2, status string, shape uint8) {
		for _, p := range []string{p1, p2, status} {
			if len(p) > 40 || strings.Count(p, ".") > 4 {
				return
			}
		}
		fields := fuzzFields(shape, p1, p2, status)
		if p1 == "" || p2 == "" || p1 == p2 {
			return // config.SuccessRecord.Validate refuses these
		}
		retained := retainedFields(&config.Worker{SuccessRecord: config.SuccessRecord{Fields: []string{p1, p2}}, StatusField: status})
		full := &Event{Fields: fields}
		trimmed := &Event{kept: keepFields(make([]any, len(retained)), fields, retained)}
		for _, p := range []string{p1, p2} {
			k := newKeptPath(p, retained)
			wv, wok := k.path.get(fields)
			fv, fok := k.get(full)
			gv, gok := k.get(trimmed)
			if !reflect.DeepEqual(fv, wv) || fok != wok || !reflect.DeepEqual(gv, wv) || gok != wok {
				t.Fatalf("path %q of %v (retained %q): got %v %v from the fields and %v %v from the kept values, want %v %v", p, fields, retained, fv, fok, gv, gok, wv, wok)
			}
		}
		if status == "" {
			return // no status field
		}
		k := newKeptPath(status, retained)
		want := fields[status]
		if got := k.topLevel(full); !reflect.DeepEqual(got, want) {
			t.Fatalf("status %q of %v: got %v from the fields, want %v", status, fields, got, want)
		}
		if got := k.topLevel(trimmed); !reflect.DeepEqual(got, want) {
			t.Fatalf("status %q of %v (retained %q): got %v from the kept values, want %v", status, fields, retained, got, want)
		}
	})
}

// fuzzFields builds an event for the paths: shape's bits choose, for each
// path, whether its whole text is a top-level key, whether its segments
// lead through objects to a value, and whether an object stops early at a
// scalar or a null.
func fuzzFields(shape uint8, paths ...string) map[string]any {
	m := map[string]any{"other": int64(1)}
	for i, p := range paths {
		if p == "" {
			continue
		}
		bits := shape >> (2 * uint(i%4))
		segs := strings.Split(p, ".")
		if bits&1 != 0 {
			m[p] = fmt.Sprintf("whole %d", i)
			if bits&2 != 0 {
				m[p] = nil
			}
		}
		if bits&2 != 0 || len(segs) == 1 {
			cur := m
			for j, s := range segs {
				if j == len(segs)-1 {
					cur[s] = fmt.Sprintf("leaf %d", i)
					break
				}
				next, ok := cur[s].(map[string]any)
				if !ok {
					if _, taken := cur[s]; taken {
						break // a scalar or null stops the walk
					}
					next = map[string]any{}
					cur[s] = next
				}
				cur = next
			}
		} else if len(segs) > 1 {
			m[segs[0]] = "a scalar where an object would be"
		}
	}
	return m
}
