package claimx_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"testing"
	"time"

	"kpipe/internal/claimx"
	"kpipe/internal/httpconn"
	"kpipe/internal/sim"
)

// rawRowSamples are rows with what the accessors must get right: escapes
// in keys and values, repeated keys (the last wins, at the top and
// nested), integral floats, integers beyond int64, numeric strings,
// booleans, nulls, arrays, empty objects and insignificant space.
var rawRowSamples = []string{
	`{}`,
	`{"a":{"b":{"c":"deep"}},"a.b":"dotted","":"empty key","n":null}`,
	`{"id":1,"id":"2","x":{"k":1,"k":{"z":true}},"x":{"k":3}}`,
	`{"f":1.0,"g":1e3,"h":-0.5,"big":12345678901234567890,"s":"42","t":" 42","neg":-9007199254740993,"huge":1e300}`,
	`{"esc\"aped":"v\u00e9\n\"q\"","k\u00e9y":"caf\u00e9","tab":"a\tb","html":"<b>&</b>","ls":"\u2028"}`,
	"{ \"sp\" : [ 1 , { \"in\" : \"side\" } ] ,\n\t\"t\" : true , \"f\" : false, \"o\" : { } }",
	`{"updated_at":"2026-01-10T12:34:56.789Z","bad_time":"2026-13-01","num_time":20260110,"zone":"2026-01-10T12:34:56+02:00"}`,
	`{"arr":[{"a":1}],"obj":{"arr":[1,2]},"null_obj":null}`,
	"{\"a\" : \"x\\\\\" , \"b\":\"\\\" y \\\\ \\\"\" ,\r\n\"c\" :[ \"[ ]\" , { } ] }",
	"\n\t {\"around\":\"only\"}\r\n ",
}

// paths returns every dotted path into r's objects, the whole row (""),
// and paths that miss (an unknown key, one past a scalar, a trailing dot,
// an empty segment).
func paths(r map[string]any) []string {
	out := []string{"", "nope", "nope.deeper", "."}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			p := prefix + k
			out = append(out, p, p+".", p+".x", p+"..x")
			if sub, ok := v.(map[string]any); ok {
				walk(p+".", sub)
			}
		}
	}
	walk("", r)
	sort.Strings(out)
	return out
}

// checkRawRowEqualsRow checks every accessor of the RawRow of b against
// the Row of b, over every path into it.
func checkRawRowEqualsRow(t testing.TB, b []byte) {
	t.Helper()
	row, err := claimx.DecodeRow(b)
	raw, rerr := claimx.DecodeRawRow(b)
	if (err == nil) != (rerr == nil) {
		t.Fatalf("%q: DecodeRow err %v, DecodeRawRow err %v", b, err, rerr)
	}
	if err != nil {
		if !errors.Is(rerr, httpconn.ErrMalformedBody) {
			t.Fatalf("%q: DecodeRawRow err %v, want it to wrap %v", b, rerr, httpconn.ErrMalformedBody)
		}
		return
	}
	if got := raw.Row(); !reflect.DeepEqual(got, row) {
		t.Fatalf("%q: Row() = %#v, want %#v", b, got, row)
	}
	var compacted bytes.Buffer
	if err := json.Compact(&compacted, b); err != nil {
		t.Fatalf("%q: accepted, but json.Compact says %v", b, err)
	}
	if raw.JSON() != compacted.String() {
		t.Fatalf("%q: JSON() = %q, want %q", b, raw.JSON(), compacted.String())
	}
	var back map[string]any
	if err := json.Unmarshal([]byte(raw.JSON()), &back); err != nil {
		t.Fatalf("%q: JSON() %q: %v", b, raw.JSON(), err)
	}
	var want map[string]any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, want) {
		t.Fatalf("%q: JSON() %q decodes to %v, want %v", b, raw.JSON(), back, want)
	}
	for _, p := range paths(row) {
		gv, gok := raw.Get(p)
		wv, wok := row.Get(p)
		if p == "" {
			wv = map[string]any(row) // Row.Get("") gives the Row itself
		}
		if gok != wok || !reflect.DeepEqual(gv, wv) {
			t.Errorf("%q: Get(%q) = %#v, %v; want %#v, %v", b, p, gv, gok, wv, wok)
		}
		gi, giok := raw.Int64(p)
		wi, wiok := row.Int64(p)
		if gi != wi || giok != wiok {
			t.Errorf("%q: Int64(%q) = %d, %v; want %d, %v", b, p, gi, giok, wi, wiok)
		}
		gs, gsok := raw.String(p)
		ws, wsok := row.String(p)
		if gs != ws || gsok != wsok {
			t.Errorf("%q: String(%q) = %q, %v; want %q, %v", b, p, gs, gsok, ws, wsok)
		}
		gt, gtok := raw.Time(p)
		wt, wtok := row.Time(p)
		if !gt.Equal(wt) || gtok != wtok || gt.Location() != wt.Location() {
			t.Errorf("%q: Time(%q) = %v, %v; want %v, %v", b, p, gt, gtok, wt, wtok)
		}
		_, has := row[p]
		if raw.Has(p) != has {
			t.Errorf("%q: Has(%q) = %v, want %v", b, p, raw.Has(p), has)
		}
	}
}

// TestRawRowEqualsRow: a RawRow's accessors give what the Row's give, on
// the edge cases above and on every row the simulator serves of one world
// (task assignments in full at every step, project exports).
func TestRawRowEqualsRow(t *testing.T) {
	for _, s := range rawRowSamples {
		checkRawRowEqualsRow(t, []byte(s))
	}
	for _, b := range simRows(t, 40) {
		checkRawRowEqualsRow(t, b)
	}
}

// TestRawRowNil: a nil RawRow is an empty row, as a nil Row is.
func TestRawRowNil(t *testing.T) {
	var r *claimx.RawRow
	if _, ok := r.Get("a"); ok {
		t.Fatal("Get on nil found a value")
	}
	if _, ok := r.String("a"); ok {
		t.Fatal("String on nil found a value")
	}
	if r.Has("a") || r.Row() != nil || r.JSON() != "null" {
		t.Fatalf("nil RawRow: Has %v, Row %v, JSON %q", r.Has("a"), r.Row(), r.JSON())
	}
}

// FuzzRawRow: DecodeRawRow accepts what DecodeRow accepts, and its
// accessors give what the Row's do at every path.
func FuzzRawRow(f *testing.F) {
	for _, s := range rawRowSamples {
		f.Add([]byte(s))
	}
	for _, s := range []string{`[1]`, `{"a":`, `{} {}`, ``, `{"a":1e400}`, "{\"a\":\"caf\xc3\"}", `{"a":"\udc00"}`, `{"a":1,}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkRawRowEqualsRow(t, b)
	})
}

// BenchmarkRowMemory reports the heap a cached task assignment of the
// simulator's costs as a Row (its maps), as a Row with the JSON a payload
// embeds (what the enrichment worker's cache held before RawRow), and as a
// RawRow.
func BenchmarkRowMemory(b *testing.B) {
	bodies := simAssignments(b, 2000)
	var size int
	for _, body := range bodies {
		size += len(body)
	}
	for _, bc := range []struct {
		name string
		keep func([]byte) any
	}{
		{"row", func(body []byte) any { r, _ := claimx.DecodeRow(body); return r }},
		{"row+json", func(body []byte) any {
			r, _ := claimx.DecodeRow(body)
			js, _ := json.Marshal(r)
			return []any{r, js}
		}},
		{"rawrow", func(body []byte) any { r, _ := claimx.DecodeRawRow(body); return r }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				kept := make([]any, len(bodies))
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for i, body := range bodies {
					kept[i] = bc.keep(body)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(len(bodies)), "heap-B/row")
				b.ReportMetric(float64(size)/float64(len(bodies)), "json-B/row")
				runtime.KeepAlive(kept)
			}
		})
	}
}

// simRows returns what the simulator serves of a world of n projects:
// every task assignment in full at three moments of the world's time
// (so at several steps of their lifecycles) and every project export.
func simRows(t testing.TB, n int) [][]byte {
	t.Helper()
	s := sim.New(sim.Options{Seed: 1, Projects: n})
	get := func(path string) []byte {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+sim.DefaultToken)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code == http.StatusNotFound {
			return nil // an assignment not created yet
		}
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body.Bytes())
		}
		return w.Body.Bytes()
	}
	var out [][]byte
	projects := make(map[string]bool)
	span := s.End().Sub(s.Start())
	for _, at := range []time.Duration{span / 4, span / 2, span} {
		s.SetNow(s.Start().Add(at))
		for _, id := range s.Manifest().AssignmentIDs(0) {
			b := get("/customTasks/assignment/" + strconv.FormatInt(id, 10) + "?full=true")
			if b == nil {
				continue
			}
			out = append(out, b)
			row, err := claimx.DecodeRow(b)
			if err != nil {
				t.Fatal(err)
			}
			pid, _ := row.String("project_id")
			projects[pid] = true
		}
	}
	for pid := range projects {
		out = append(out, get("/export/project/"+pid))
	}
	return out
}

// simAssignments returns n task assignments in full as the simulator
// serves them at the end of its world.
func simAssignments(t testing.TB, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for _, b := range simRows(t, n) {
		if row, _ := claimx.DecodeRow(b); row["assignment_id"] != nil {
			out = append(out, b)
		}
	}
	return out[len(out)-min(n, len(out)):]
}

// BenchmarkDecodeRawRow measures what a fetched row costs to take in: a
// Row's maps against a RawRow's checked text and index.
func BenchmarkDecodeRawRow(b *testing.B) {
	bodies := simAssignments(b, 200)
	for _, bc := range []struct {
		name   string
		decode func([]byte) error
	}{
		{"row", func(body []byte) error { _, err := claimx.DecodeRow(body); return err }},
		{"rawrow", func(body []byte) error { _, err := claimx.DecodeRawRow(body); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := bc.decode(bodies[i%len(bodies)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
