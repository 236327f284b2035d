package query

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"kpipe/internal/delta"
)

var queriesPath = filepath.Join("..", "..", "scripts", "delta_tables", "itel_cabinet_queries.sql")

// fetch runs q and returns its column names and rows, values normalized.
func fetch(t *testing.T, db *DB, q string) ([]string, [][]any) {
	t.Helper()
	rows, err := db.Query(t.Context(), q)
	if err != nil {
		t.Fatalf("query %q: %v", firstLine(q), err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i := range vals {
			vals[i] = norm(vals[i])
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols, out
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// norm maps the Go values of rows written and rows read onto one
// representation: integers int64, floats float64, times UTC, json.Number
// parsed, nested maps and slices normalized.
func norm(v any) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case float32:
		return float64(x)
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case time.Time:
		return x.UTC()
	case map[string]any:
		if x == nil {
			return nil
		}
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = norm(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = norm(e)
		}
		return s
	}
	return v
}

// same compares normalized values: times by instant, floats within 1e-6,
// maps field by field with a missing field equal to null (a struct read
// back has the fields of the table schema; a row written has its own).
func same(got, want any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	case float64:
		g, ok := got.(float64)
		return ok && math.Abs(g-w) < 1e-6
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			if !same(g[k], wv) {
				return false
			}
		}
		for k, gv := range g {
			if _, ok := w[k]; !ok && gv != nil {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !same(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
}

func checkRows(t *testing.T, name string, got, want [][]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d rows, want %d\ngot:  %v\nwant: %v", name, len(got), len(want), got, want)
		return
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Errorf("%s: row %d: got %d columns, want %d", name, i, len(got[i]), len(want[i]))
			continue
		}
		for j := range want[i] {
			if !same(got[i][j], want[i][j]) {
				t.Errorf("%s: row %d column %d: got %#v, want %#v", name, i, j, got[i][j], want[i][j])
			}
		}
	}
}

// Row accessors for the fixture's written rows.
func str(r map[string]any, k string) string { s, _ := r[k].(string); return s }
func ts(r map[string]any, k string) time.Time {
	v, _ := r[k].(time.Time)
	return v.UTC().Truncate(time.Microsecond)
}
func optTS(r map[string]any, k string) any {
	if v, ok := r[k].(time.Time); ok {
		return v.UTC().Truncate(time.Microsecond)
	}
	return nil
}
func i64(r map[string]any, k string) any { return norm(r[k]) }

// utcDate is the UTC calendar date of t, as days since the epoch.
func utcDate(t time.Time) int64 {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix() / 86400
}

// byTime sorts rows by event_timestamp then event_id.
func byTime(rows []map[string]any) []map[string]any {
	s := slices.Clone(rows)
	slices.SortStableFunc(s, func(a, b map[string]any) int {
		return cmp.Or(ts(a, "event_timestamp").Compare(ts(b, "event_timestamp")), strings.Compare(str(a, "event_id"), str(b, "event_id")))
	})
	return s
}

func statements(t *testing.T) []Statement {
	t.Helper()
	data, err := os.ReadFile(queriesPath)
	if err != nil {
		t.Fatal(err)
	}
	stmts := Split(string(data))
	wantHeads := []string{"Task lifecycle", "Status transitions", "Time in each status", "Stuck tasks", "Daily event counts", "Rows lacking enrichment"}
	if len(stmts) != len(wantHeads) {
		t.Fatalf("%s: %d statements, want %d", queriesPath, len(stmts), len(wantHeads))
	}
	for i, h := range wantHeads {
		if !strings.HasPrefix(stmts[i].Comment, h) {
			t.Fatalf("statement %d: header %q, want it to start %q", i+1, stmts[i].Comment, h)
		}
	}
	return stmts
}

// TestSampleQueries runs every query of scripts/delta_tables against a
// table written like the worker writes it and checks each result against
// values computed here from the rows written.
func TestSampleQueries(t *testing.T) {
	f := newFixture(t)
	stmts := statements(t)
	db, err := Open(t.Context(), f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows := byTime(f.rows)
	itel := slices.DeleteFunc(slices.Clone(rows), func(r map[string]any) bool { return r["task_id"] != int32(itelTask) })

	t.Run("lifecycle", func(t *testing.T) {
		// SPEC.md's query as written, Spark's DATEDIFF included.
		if !strings.Contains(stmts[0].SQL, "DATEDIFF(task_completed_at, task_created_at) as days_to_complete") {
			t.Fatalf("lifecycle query is not SPEC.md's")
		}
		cols, got := fetch(t, db, stmts[0].SQL)
		if want := []string{"task_id", "assignment_id", "task_status", "event_timestamp", "task_created_at", "task_completed_at", "days_to_complete"}; !slices.Equal(cols, want) {
			t.Fatalf("columns %v, want %v", cols, want)
		}
		var want [][]any
		for _, r := range itel {
			var days any
			if c, ok := r["task_completed_at"].(time.Time); ok {
				if s, ok := r["task_created_at"].(time.Time); ok {
					days = utcDate(c) - utcDate(s)
				}
			}
			want = append(want, []any{int64(itelTask), i64(r, "assignment_id"), str(r, "task_status"), ts(r, "event_timestamp"),
				optTS(r, "task_created_at"), optTS(r, "task_completed_at"), days})
		}
		checkRows(t, "lifecycle", got, want)
		// The fixture completes 1001 one calendar day after creation
		// (08:59 → next day 10:00) and 1003 two days after (07:00 → 17:45).
		var seen []int64
		for _, r := range got {
			if r[6] != nil {
				seen = append(seen, r[6].(int64))
			}
		}
		if !slices.Equal(seen, []int64{1, 2}) {
			t.Errorf("days_to_complete %v, want [1 2]", seen)
		}
	})

	t.Run("status transitions", func(t *testing.T) {
		_, got := fetch(t, db, stmts[1].SQL)
		type key struct {
			task   int64
			status string
		}
		type agg struct {
			n           int64
			first, last time.Time
		}
		aggs := map[key]*agg{}
		var keys []key
		for _, r := range rows {
			if r["year"] != int32(2026) || r["month"] != int32(1) {
				continue
			}
			k := key{int64(r["task_id"].(int32)), str(r, "task_status")}
			a := aggs[k]
			if a == nil {
				a = &agg{first: ts(r, "event_timestamp"), last: ts(r, "event_timestamp")}
				aggs[k] = a
				keys = append(keys, k)
			}
			a.n++
			a.first = minTime(a.first, ts(r, "event_timestamp"))
			a.last = maxTime(a.last, ts(r, "event_timestamp"))
		}
		slices.SortFunc(keys, func(x, y key) int { return cmp.Or(cmp.Compare(x.task, y.task), aggs[x].first.Compare(aggs[y].first)) })
		var want [][]any
		for _, k := range keys {
			want = append(want, []any{k.task, k.status, aggs[k].n, aggs[k].first, aggs[k].last})
		}
		if len(want) != 4 { // assigned ×2, in_progress ×2, completed, reassigned
			t.Fatalf("fixture: %d January groups, want 4", len(want))
		}
		checkRows(t, "status transitions", got, want)
	})

	t.Run("time in status", func(t *testing.T) {
		_, got := fetch(t, db, stmts[2].SQL)
		type key struct {
			asg    int64
			status string
		}
		type agg struct {
			n       int64
			secs    float64
			current bool
			first   time.Time
		}
		aggs := map[key]*agg{}
		var keys []key
		byAsg := map[int64][]map[string]any{}
		for _, r := range itel {
			a := norm(r["assignment_id"]).(int64)
			byAsg[a] = append(byAsg[a], r)
		}
		for a, evs := range byAsg {
			for i, r := range evs {
				k := key{a, str(r, "task_status")}
				g := aggs[k]
				if g == nil {
					g = &agg{first: ts(r, "event_timestamp")}
					aggs[k] = g
					keys = append(keys, k)
				}
				g.n++
				if i+1 < len(evs) {
					g.secs += ts(evs[i+1], "event_timestamp").Sub(ts(r, "event_timestamp")).Seconds()
				} else {
					g.current = true
				}
			}
		}
		slices.SortFunc(keys, func(x, y key) int {
			return cmp.Or(cmp.Compare(x.asg, y.asg), aggs[x].first.Compare(aggs[y].first), strings.Compare(x.status, y.status))
		})
		var want [][]any
		for _, k := range keys {
			g := aggs[k]
			want = append(want, []any{k.asg, k.status, g.n, g.secs, g.current})
		}
		checkRows(t, "time in status", got, want)
		// Spot check by hand: 1001 was in_progress 15:30:00 → 10:00:00.5.
		for _, r := range got {
			if r[0] == int64(1001) && r[1] == "in_progress" && !same(r[3], 18.5*3600+0.5) {
				t.Errorf("1001 in_progress: %v s, want 66600.5", r[3])
			}
		}
	})

	t.Run("stuck tasks", func(t *testing.T) {
		before := time.Now().UTC()
		_, got := fetch(t, db, stmts[3].SQL)
		after := time.Now().UTC()
		latest := map[int64]map[string]any{}
		for _, r := range itel { // ascending: the last one wins
			latest[norm(r["assignment_id"]).(int64)] = r
		}
		var want [][]any
		for a, r := range latest {
			s := str(r, "task_status")
			if s == "completed" || s == "cancelled" || !ts(r, "event_timestamp").Before(before.Add(-72*time.Hour)) {
				continue
			}
			want = append(want, []any{a, s, ts(r, "event_timestamp"), utcDate(before) - utcDate(ts(r, "event_timestamp"))})
		}
		slices.SortFunc(want, func(x, y []any) int {
			return cmp.Or(x[2].(time.Time).Compare(y[2].(time.Time)), cmp.Compare(x[0].(int64), y[0].(int64)))
		})
		// 1002 (reassigned in January) and 1004 (assigned 5 days ago) are
		// stuck; 1005 is 1 day old; 1001, 1003 completed; 1006 cancelled.
		if ids := columnOf(want, 0); !slices.Equal(ids, []any{int64(1002), int64(1004)}) {
			t.Fatalf("fixture: stuck %v, want [1002 1004]", ids)
		}
		if utcDate(before) != utcDate(after) {
			for i := range want { // midnight passed during the query
				want[i][3] = got[i][3]
			}
		}
		checkRows(t, "stuck tasks", got, want)
	})

	t.Run("daily counts", func(t *testing.T) {
		_, got := fetch(t, db, stmts[4].SQL)
		type key struct {
			day time.Time
			typ string
		}
		counts := map[key]int64{}
		for _, r := range rows {
			e := ts(r, "event_timestamp")
			counts[key{time.Date(e.Year(), e.Month(), e.Day(), 0, 0, 0, 0, time.UTC), str(r, "event_type")}]++
		}
		var want [][]any
		for k, n := range counts {
			want = append(want, []any{k.day, k.typ, n})
		}
		slices.SortFunc(want, func(x, y []any) int {
			return cmp.Or(x[0].(time.Time).Compare(y[0].(time.Time)), strings.Compare(x[1].(string), y[1].(string)))
		})
		checkRows(t, "daily counts", got, want)
	})

	t.Run("lacking enrichment", func(t *testing.T) {
		_, got := fetch(t, db, stmts[5].SQL)
		var want [][]any
		for _, r := range rows {
			if r["claimx_task_full"] == nil {
				want = append(want, []any{str(r, "event_id"), str(r, "event_type"), i64(r, "task_id"), i64(r, "assignment_id"), str(r, "task_status"), ts(r, "event_timestamp")})
			}
		}
		if len(want) != 2 {
			t.Fatalf("fixture: %d rows without enrichment, want 2", len(want))
		}
		checkRows(t, "lacking enrichment", got, want)
	})
}

func columnOf(rows [][]any, i int) []any {
	out := make([]any, len(rows))
	for j, r := range rows {
		out[j] = r[i]
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// TestSampleQueriesEmptyTable runs every query on a table with no rows yet:
// the view has every column (the inferred struct columns as NULL) and each
// query returns nothing.
func TestSampleQueriesEmptyTable(t *testing.T) {
	dir := emptyTable(t)
	db, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cols, rows := fetch(t, db, "SELECT * FROM itel_cabinet_task_tracking")
	def, err := delta.LoadTableDef(tableDefPath)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range def.Schema.Fields {
		want = append(want, f.Name)
	}
	if !slices.Equal(cols, want) || len(rows) != 0 {
		t.Fatalf("empty table: columns %v, %d rows; want %v, 0 rows", cols, len(rows), want)
	}
	for _, st := range statements(t) {
		if _, got := fetch(t, db, st.SQL); len(got) != 0 {
			t.Errorf("%s: %d rows on an empty table", firstLine(st.Comment), len(got))
		}
	}
}

// TestViewReadsEveryRow checks the view against every row written: every
// column, structs with fields added by later commits null in older rows,
// partition columns from the log.
func TestViewReadsEveryRow(t *testing.T) {
	f := newFixture(t)
	db, err := Open(t.Context(), f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.View() != "itel_cabinet_task_tracking" || db.Version() != int64(f.commits) {
		t.Fatalf("view %q at version %d, want itel_cabinet_task_tracking at %d", db.View(), db.Version(), f.commits)
	}
	cols, got := fetch(t, db, "SELECT * FROM itel_cabinet_task_tracking ORDER BY event_id")
	want := storedRows(t, f.dir, f.rows)
	slices.SortFunc(want, func(a, b map[string]any) int { return strings.Compare(str(a, "event_id"), str(b, "event_id")) })
	compareRows(t, "view", cols, got, want)

	// Schema evolution: e01 was written before claimx_task_full had "form".
	_, r := fetch(t, db, "SELECT claimx_task_full.form IS NULL, claimx_task_full.form.cabinet_count FROM itel_cabinet_task_tracking WHERE event_id IN ('e01', 'e05') ORDER BY event_id")
	// cabinet_count is a number in an inferred struct: stored as a double.
	checkRows(t, "evolved struct", r, [][]any{{true, nil}, {false, float64(3)}})
}

// TestParquetFilesReadBack is the independent reader check: every Parquet
// file the writer produced, read by DuckDB directly (no view, no Delta),
// holds exactly the rows written to it.
func TestParquetFilesReadBack(t *testing.T) {
	f := newFixture(t)
	store, err := delta.OpenLocation(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tbl.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.Context(), f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	byID := map[string]map[string]any{}
	for _, r := range storedRows(t, f.dir, f.rows) {
		byID[str(r, "event_id")] = r
	}
	seen := map[string]int{}
	for _, af := range snap.Files() {
		p := filepath.Join(f.dir, filepath.FromSlash(delta.StorageKey(af.Path)))
		cols, got := fetch(t, db, fmt.Sprintf("SELECT * FROM read_parquet(%s, hive_partitioning = false) ORDER BY event_id", literal(p)))
		if slices.ContainsFunc(cols, func(c string) bool { return c == "year" || c == "month" || c == "day" }) {
			t.Errorf("%s: partition columns stored in the file: %v", af.Path, cols)
		}
		var want []map[string]any
		for _, r := range got {
			id, _ := r[slices.Index(cols, "event_id")].(string)
			w, ok := byID[id]
			if !ok {
				t.Fatalf("%s: unexpected row %q", af.Path, id)
			}
			seen[id]++
			want = append(want, w)
			for _, pc := range []string{"year", "month", "day"} {
				if got, want := af.PartitionValues[pc], fmt.Sprint(w[pc]); got != want {
					t.Errorf("%s: row %s in partition %s=%s, want %s", af.Path, id, pc, got, want)
				}
			}
		}
		compareRows(t, af.Path, cols, got, want)
	}
	for id := range byID {
		if seen[id] != 1 {
			t.Errorf("row %s found in %d files, want 1", id, seen[id])
		}
	}
}

// storedRows returns the written rows as the table stores them: coerced to
// the table's current schema (an integer written into an inferred number
// field is a double), so that what DuckDB reads is compared with that.
func storedRows(t *testing.T, dir string, rows []map[string]any) []map[string]any {
	t.Helper()
	store, err := delta.OpenLocation(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tbl.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, len(rows))
	for i, r := range rows {
		if out[i], err = delta.CoerceRow(snap.Schema(), r); err != nil {
			t.Fatalf("row %s does not fit the table: %v", str(r, "event_id"), err)
		}
	}
	return out
}

// compareRows checks every column of got against the written rows.
func compareRows(t *testing.T, name string, cols []string, got [][]any, want []map[string]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", name, len(got), len(want))
	}
	for i, w := range want {
		for j, c := range cols {
			wv := norm(w[c])
			if tv, ok := wv.(time.Time); ok {
				wv = tv.Truncate(time.Microsecond)
			}
			if !same(got[i][j], wv) {
				t.Errorf("%s: row %s column %s: got %#v, want %#v", name, str(w, "event_id"), c, got[i][j], wv)
			}
		}
		for c := range w {
			if !slices.Contains(cols, c) && !(w[c] == nil) && !isPartition(c) {
				t.Errorf("%s: column %s written but not read", name, c)
			}
		}
	}
}

func isPartition(c string) bool { return c == "year" || c == "month" || c == "day" }

func TestOpenNoTable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	_, err := Open(t.Context(), dir)
	var nt *NoTableError
	if !errors.As(err, &nt) || !errors.Is(err, delta.ErrNotATable) {
		t.Fatalf("got %v, want *NoTableError wrapping delta.ErrNotATable", err)
	}
	if want := "no Delta table at " + dir + ": run `kpipe up` or `kpipe table create`"; err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
}

// TestDatediff checks the Spark-style two-argument DATEDIFF next to
// DuckDB's own three-argument form.
func TestDatediff(t *testing.T) {
	db, err := Open(t.Context(), emptyTable(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, got := fetch(t, db, `SELECT
		DATEDIFF(TIMESTAMPTZ '2026-01-06 00:30:00+00', TIMESTAMPTZ '2026-01-05 23:30:00+00'),
		DATEDIFF(TIMESTAMPTZ '2026-01-05 01:00:00+00', TIMESTAMPTZ '2026-01-06 23:00:00+00'),
		datediff(DATE '2026-03-01', DATE '2026-02-01'),
		DATEDIFF('2026-01-10', '2026-01-01'),
		DATEDIFF('hour', TIMESTAMP '2026-01-01 00:00', TIMESTAMP '2026-01-02 06:00'),
		date_diff('day', DATE '2026-01-01', DATE '2026-01-31'),
		DATEDIFF(NULL, DATE '2026-01-01')`)
	checkRows(t, "datediff", got, [][]any{{int64(1), int64(-1), int64(28), int64(9), int64(30), int64(30), nil}})
}
