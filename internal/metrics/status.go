package metrics

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"
)

// StatusProvider is a part of the process with something to show on the
// live page (GET / and /status.json of the metrics endpoint) beyond its
// metrics: a worker's last commits and newest rows, the local stack's
// facts. The workers and the stack implement it; the metrics package knows
// none of them. Status is called once per /status.json request, possibly
// from several goroutines at once, so it must be safe for concurrent use
// and quick: a copy of what is kept, no I/O.
type StatusProvider interface {
	Status() Status
}

// Status is one provider's part of the live page.
type Status struct {
	// Title names the part ("tracking worker itel_cabinet_tracking_worker").
	Title string `json:"title"`
	// Facts are name/value pairs shown as they are (where the table is,
	// events generated).
	Facts []Fact `json:"facts,omitempty"`
	// CommitsTitle heads Commits ("last table commits").
	CommitsTitle string   `json:"commits_title,omitempty"`
	Commits      []Commit `json:"commits,omitempty"`
	// RowsTitle heads Rows ("newest rows"); Columns name the fields of
	// Rows, each row a value per column ("" where a row has none).
	RowsTitle string     `json:"rows_title,omitempty"`
	Columns   []string   `json:"columns,omitempty"`
	Rows      [][]string `json:"rows,omitempty"`
}

// Fact is a name and a value of a Status.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Commit is something a worker made durable: a table version, a Kafka
// transaction.
type Commit struct {
	Time time.Time `json:"time"`
	// Target is what was committed to: a table name, "transaction".
	Target string `json:"target"`
	// Version is the table version, or -1 when the target has none.
	Version int64 `json:"version"`
	// Rows is how many rows (events, records) the commit holds.
	Rows int `json:"rows"`
	// Note says more (the records published, the duplicates dropped).
	Note string `json:"note,omitempty"`
}

// Recent keeps a worker's last commits and newest rows for the live page;
// it is a StatusProvider. It is safe for concurrent use, and cheap enough to
// feed on every commit: it keeps at most a fixed number of each, copying
// only the scalar fields of the rows it keeps. A nil *Recent ignores
// everything and reports an empty Status.
type Recent struct {
	title, commitsTitle, rowsTitle string
	lead                           []string

	mu      sync.Mutex
	facts   []Fact
	commits []Commit // oldest first, at most maxCommits
	rows    []map[string]string
}

// MaxRecentRows is the most rows a Recent keeps: a caller need give it no
// more.
const MaxRecentRows = 10

// Sizes of what a Recent keeps.
const (
	maxRecentCommits = 10
	maxCellBytes     = 80
)

// NewRecent returns a Recent titled title; commitsTitle and rowsTitle head
// its commits and rows, and lead names columns to show first, in this
// order, before the others sorted by name.
func NewRecent(title, commitsTitle, rowsTitle string, lead ...string) *Recent {
	return &Recent{title: title, commitsTitle: commitsTitle, rowsTitle: rowsTitle, lead: lead}
}

// SetFacts replaces the facts shown.
func (r *Recent) SetFacts(facts ...Fact) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.facts = append([]Fact(nil), facts...)
}

// Commit records a commit.
func (r *Recent) Commit(c Commit) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commits = append(r.commits, c)
	if n := len(r.commits) - maxRecentCommits; n > 0 {
		r.commits = append(r.commits[:0], r.commits[n:]...)
	}
}

// Rows records rows, newest last. Of each row the scalar fields (strings,
// numbers, booleans, times) are kept, as text cut to 80 bytes; objects and
// arrays are left out. Only the newest 10 rows are kept, so passing a whole
// batch costs the copy of its last 10.
func (r *Recent) Rows(rows ...map[string]any) {
	if r == nil || len(rows) == 0 {
		return
	}
	if len(rows) > MaxRecentRows {
		rows = rows[len(rows)-MaxRecentRows:]
	}
	kept := make([]map[string]string, 0, len(rows))
	for _, row := range rows {
		m := make(map[string]string, len(row))
		for k, v := range row {
			if s, ok := cell(v); ok {
				m[k] = s
			}
		}
		kept = append(kept, m)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, kept...)
	if n := len(r.rows) - MaxRecentRows; n > 0 {
		r.rows = append(r.rows[:0], r.rows[n:]...)
	}
}

// cell is v as the text of a table cell, and whether v is a scalar.
func cell(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case int:
		s = strconv.Itoa(x)
	case int32:
		s = strconv.FormatInt(int64(x), 10)
	case int64:
		s = strconv.FormatInt(x, 10)
	case float32:
		s = strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			s = strconv.FormatFloat(x, 'f', -1, 64)
		} else {
			s = strconv.FormatFloat(x, 'g', -1, 64)
		}
	case time.Time:
		s = x.UTC().Format(time.RFC3339Nano)
	case fmt.Stringer:
		s = x.String()
	default:
		return "", false
	}
	if len(s) > maxCellBytes {
		cut := maxCellBytes
		for cut > 0 && s[cut]&0xC0 == 0x80 { // not inside a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return s, true
}

// Status implements StatusProvider: the commits newest first, the rows
// newest first.
func (r *Recent) Status() Status {
	if r == nil {
		return Status{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{Title: r.title, CommitsTitle: r.commitsTitle, RowsTitle: r.rowsTitle}
	st.Facts = append(st.Facts, r.facts...)
	for i := len(r.commits) - 1; i >= 0; i-- {
		st.Commits = append(st.Commits, r.commits[i])
	}
	seen := map[string]bool{}
	for _, row := range r.rows {
		for k := range row {
			seen[k] = true
		}
	}
	for _, k := range r.lead {
		if seen[k] {
			st.Columns = append(st.Columns, k)
			delete(seen, k)
		}
	}
	rest := make([]string, 0, len(seen))
	for k := range seen {
		rest = append(rest, k)
	}
	sort.Strings(rest)
	st.Columns = append(st.Columns, rest...)
	for i := len(r.rows) - 1; i >= 0; i-- {
		vals := make([]string, len(st.Columns))
		for j, c := range st.Columns {
			vals[j] = r.rows[i][c]
		}
		st.Rows = append(st.Rows, vals)
	}
	return st
}

// StatusFunc adapts a function to a StatusProvider.
type StatusFunc func() Status

// Status implements StatusProvider.
func (f StatusFunc) Status() Status { return f() }
