package delta

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// Rows are rows given by column, for AppendRows: Values[i][j] is row i's
// value of the top-level column Columns[j], of the types a row map holds
// (see Append). A nil value is the key left out of the row's map: null, or
// for an identity column, a value to generate. A row of Values has
// exactly len(Columns) values. Columns need not be the table's: one the
// table lacks takes part in schema evolution, as a key of a row map does.
//
// A row of Rows holds no map of its own, so building, keeping and
// shredding it costs an allocation of len(Columns) values instead of a
// hash map's.
type Rows struct {
	Columns []string
	Values  [][]any
}

// Len is the number of rows.
func (r Rows) Len() int { return len(r.Values) }

// Map returns row i as a row map, without its nil values.
func (r Rows) Map(i int) map[string]any {
	m := make(map[string]any, len(r.Columns))
	for j, v := range r.Values[i] {
		if v != nil {
			m[r.Columns[j]] = v
		}
	}
	return m
}

// maps returns every row as a row map (Map).
func (r Rows) maps() []map[string]any {
	out := make([]map[string]any, len(r.Values))
	for i := range r.Values {
		out[i] = r.Map(i)
	}
	return out
}

func (r Rows) check() error {
	seen := make(map[string]bool, len(r.Columns))
	for _, c := range r.Columns {
		if seen[c] {
			return fmt.Errorf("delta: Rows: column %q is given twice", c)
		}
		seen[c] = true
	}
	for i, v := range r.Values {
		if len(v) != len(r.Columns) {
			return fmt.Errorf("delta: Rows: row %d has %d values for %d columns", i, len(v), len(r.Columns))
		}
	}
	return nil
}

// AppendRows is Append of rows given by column: the result (files, stats,
// commit, rejections, schema evolution, errors) is exactly the one of
// Append with each row as Rows.Map gives it. Rows that all fit the
// table's schema are shredded from their values directly; any other batch
// (one that evolves the schema, holds a row that does not fit, or has an
// identity column to fill) is done by Append from the row maps, so only
// the common case gains.
func (t *Table) AppendRows(ctx context.Context, rows Rows, opts AppendOptions) (CommitResult, error) {
	if err := rows.check(); err != nil {
		return CommitResult{}, err
	}
	return t.appendIn(ctx, inRows{vals: rows.Values, cols: rows.Columns}, opts)
}

// rowsFallbacks counts the AppendRows calls done from row maps (for
// tests: the fast path is taken).
var rowsFallbacks atomic.Int64

// inRows are an Append's rows: row maps, or (vals non-nil) values by
// column as Rows holds them.
type inRows struct {
	maps []map[string]any
	vals [][]any
	cols []string
}

func mapRows(rows []map[string]any) inRows { return inRows{maps: rows} }

func (in inRows) len() int {
	if in.vals != nil {
		return len(in.vals)
	}
	return len(in.maps)
}

// asMaps returns in as row maps.
func (in inRows) asMaps() []map[string]any {
	if in.vals == nil {
		return in.maps
	}
	return Rows{Columns: in.cols, Values: in.vals}.maps()
}

// rootBinding maps a write plan's top-level fields to the columns of
// Rows: idx[k] is the column of root field k (-1: none, always null), and
// extra are the columns that are neither a field nor ignored (partition
// columns): a row with a value there does not fit the plan.
type rootBinding struct {
	idx   []int
	extra []int
}

func bindRoot(p *writePlan, cols []string) *rootBinding {
	b := &rootBinding{idx: make([]int, len(p.root.fields))}
	byName := make(map[string]int, len(cols))
	for j, c := range cols {
		byName[c] = j
	}
	used := make([]bool, len(cols))
	for k, f := range p.root.fields {
		j, ok := byName[f.name]
		if !ok {
			j = -1
		} else {
			used[j] = true
		}
		b.idx[k] = j
	}
	for j, c := range cols {
		if !used[j] && !p.ignore[c] {
			b.extra = append(b.extra, j)
		}
	}
	return b
}

// errExtraColumn fails the shredding of a row of Rows with a value for a
// column the plan does not write; Append then does the batch from the row
// maps, which reports or evolves it.
var errExtraColumn = errors.New("delta: a column of Rows is not in the table schema")

// addValues shreds one row of Rows, as writeStruct shreds the root of a
// row map.
func (e *fileEncoder) addValues(row []any, b *rootBinding) error {
	for _, j := range b.extra {
		if row[j] != nil {
			return errExtraColumn
		}
	}
	n := e.plan.root
	for k, f := range n.fields {
		var v any
		if j := b.idx[k]; j >= 0 {
			v = row[j]
		}
		if f.kind == kindStruct {
			if m, ok := v.(map[string]any); ok {
				if err := e.writeTopStruct(f, m, n.def); err != nil {
					return err
				}
				continue
			}
		}
		if err := e.writeField(f, v, 0, n.def, false); err != nil {
			return err
		}
	}
	return nil
}
