package delta

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"kpipe/internal/jsonx"
)

// checkRows is Append's row-by-row pass for RejectBadRows: it evolves the
// schema with each row (when evolve is set) and shreds the row alone
// against it, partition values included. A row that fails is rejected and
// its evolution dropped; one that fails only for a key nothing could be
// inferred from yet is checked again after the others. It returns the
// final schema, the rows that fit (in order) and the rejected ones. Each
// row is shredded alone into a scratch encoder, once when it fits the
// schema as it is and twice when not, so the pass is linear in the rows.
// Rows may hold *jsonx.RawObject values: a row whose raw objects the fast
// path does not write is checked with them decoded, and returned so.
//
// The outcome is the one of appending the rows one at a time, in order:
// the first typed value of a new field decides its type, a later row that
// conflicts with it is rejected, and a value nothing could be inferred from
// (null, [] or {}) is stored as null when its row was checked before the
// field had a type, even if a later row of the same call gives it one.
func (t *Table) checkRows(snap *Snapshot, rows []map[string]any, evolve bool, casts map[string]Cast) (*StructType, []map[string]any, []*SchemaError, error) {
	schema := snap.metadata.Schema
	var order []string
	if evolve {
		order = declaredOrder(snap)
	}
	partCols := snap.metadata.PartitionColumns
	var (
		plan     *writePlan
		planOf   *StructType
		enc      *fileEncoder
		good     = make([]map[string]any, 0, len(rows))
		rejected []*SchemaError
	)
	defer func() {
		if enc != nil {
			enc.release()
		}
	}()
	reject := func(i int, err error) error {
		var se *SchemaError
		if !errors.As(err, &se) {
			return err
		}
		rejected = append(rejected, withRow(se, i).(*SchemaError))
		return nil
	}
	// checkedWith[i] is the schema row i fitted, nil when it did not.
	checkedWith := make([]*StructType, len(rows))
	var deferred []int
	// mat[i] is row i with its raw objects decoded, once it needed them.
	var mat []map[string]any
	row := func(i int) map[string]any {
		if mat != nil && mat[i] != nil {
			return mat[i]
		}
		return rows[i]
	}
	// useSchema makes enc an encoder of ns; an error is writePlanFor's.
	useSchema := func(ns *StructType) error {
		if ns != planOf {
			p, err := t.writePlanFor(snap, ns)
			if err != nil {
				return err
			}
			if enc != nil {
				enc.release()
			}
			plan, planOf, enc = p, ns, nil
		}
		if enc == nil {
			enc = newFileEncoder(plan, 1)
			enc.casts = casts
		}
		return nil
	}
	// fits shreds r alone against ns, partition values included.
	fits := func(ns *StructType, r map[string]any) error {
		err := checkPartitionValues(ns, partCols, r, casts)
		if err == nil {
			err = enc.safeAddRow(r, -1)
		}
		if err != nil {
			// A failed row leaves the encoder unusable: take a fresh one.
			enc.release()
			enc = nil
			return err
		}
		enc.reset()
		return nil
	}
	// check evolves the schema with row i and shreds it alone. Unless final
	// is set, a row whose only fault is a key the schema lacks (a value
	// nothing could be inferred from yet, such as an empty array) is
	// deferred, as a later row may add the field.
	check := func(i int, final bool) error {
		r := row(i)
		// A row that fits the schema as it is needs no evolution
		// (evolution adds fields only for typed values at keys the schema
		// lacks, and such a row does not fit), so it is shredded first as
		// it is: its raw objects from their bytes, which writes them as
		// their maps would be written. Most rows of a flush that evolves
		// the schema or rejects a row fit; they cost one shred each.
		if useSchema(schema) == nil && fits(schema, r) == nil {
			checkedWith[i] = schema
			return nil
		}
		if m, changed := jsonx.MaterializeMap(r); changed {
			if mat == nil {
				mat = make([]map[string]any, len(rows))
			}
			mat[i], r = m, m
		}
		ns := schema
		if evolve {
			var err error
			if ns, err = evolveRowFor(snap, schema, r, order); err != nil {
				return reject(i, err)
			}
		}
		if err := useSchema(ns); err != nil {
			// A schema the writer cannot encode (nested too deep): the
			// row that evolved it is rejected.
			return reject(i, err)
		}
		if err := fits(ns, r); err != nil {
			if !final && evolve && errors.Is(err, errUnknownField) {
				deferred = append(deferred, i)
				return nil
			}
			return reject(i, err)
		}
		schema = ns
		checkedWith[i] = ns
		return nil
	}
	for i := range rows {
		if err := check(i, false); err != nil {
			return nil, nil, nil, err
		}
	}
	for _, i := range deferred {
		if err := check(i, true); err != nil {
			return nil, nil, nil, err
		}
	}
	slices.SortFunc(rejected, func(a, b *SchemaError) int { return a.Row - b.Row })
	for i := range rows {
		if at := checkedWith[i]; at != nil {
			r := row(i)
			if at != schema {
				r, _ = dropUntypeable(at, r)
			}
			good = append(good, r)
		}
	}
	return schema, good, rejected, nil
}

// checkPartitionValues checks row's partition values as groupChunk does.
func checkPartitionValues(schema *StructType, partCols []string, row map[string]any, casts map[string]Cast) error {
	for _, pc := range partCols {
		f := schema.Field(pc)
		if f == nil {
			return fmt.Errorf("%w: partition column %q not in schema", ErrCorruptLog, pc)
		}
		v := row[pc]
		if _, ok := appendPartitionKey(nil, f.Type, v); ok {
			continue
		}
		c, err := castValue(f.Type, v, pc, casts[pc])
		if err != nil {
			return err
		}
		if c == nil {
			if !f.Nullable {
				return &SchemaError{Row: -1, Path: pc, Reason: "null in NOT NULL partition column"}
			}
			continue
		}
		if _, err := serializePartitionValue(f.Type, c); err != nil {
			return &SchemaError{Row: -1, Path: pc, Reason: err.Error()}
		}
	}
	return nil
}

// dropUntypeable returns m without the values that carry no type (see
// untypeable) at keys t lacks, at any depth, copying only the maps and
// slices on the way to such a key; m itself when there is none. A row
// checked against t is stored this way under a later schema that has
// those keys, as it would have been by an Append of its own.
func dropUntypeable(t *StructType, m map[string]any) (map[string]any, bool) {
	var out map[string]any
	for k, x := range m {
		if x == nil {
			continue
		}
		f := t.Field(k)
		var nx any
		drop, changed := false, false
		if f == nil {
			drop = untypeable(x)
		} else {
			nx, changed = dropUntypeableValue(f.Type, x)
		}
		if !drop && !changed {
			continue
		}
		if out == nil {
			out = maps.Clone(m)
		}
		if drop {
			delete(out, k)
		} else {
			out[k] = nx
		}
	}
	if out == nil {
		return m, false
	}
	return out, true
}

func dropUntypeableValue(t DataType, v any) (any, bool) {
	if !hasStruct(t) {
		return v, false
	}
	if r, ok := v.(*jsonx.RawObject); ok {
		m, _ := dropUntypeableValue(t, r.Map())
		return m, true
	}
	switch t := t.(type) {
	case *StructType:
		if m, ok := v.(map[string]any); ok {
			return dropUntypeable(t, m)
		}
	case *ArrayType:
		l, ok := v.([]any)
		if !ok {
			return v, false
		}
		var out []any
		for i, e := range l {
			ne, changed := dropUntypeableValue(t.ElementType, e)
			if !changed {
				continue
			}
			if out == nil {
				out = slices.Clone(l)
			}
			out[i] = ne
		}
		if out != nil {
			return out, true
		}
	case *MapType:
		m, ok := v.(map[string]any)
		if !ok {
			return v, false
		}
		var out map[string]any
		for k, e := range m {
			ne, changed := dropUntypeableValue(t.ValueType, e)
			if !changed {
				continue
			}
			if out == nil {
				out = maps.Clone(m)
			}
			out[k] = ne
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}

// maxLevel is the highest Parquet definition or repetition level the
// writer can encode: parquet-go keeps each in a byte, and a larger one
// panics inside it.
const maxLevel = 255

// maxErrorPath bounds the column path an ErrTooDeep error spells out.
const maxErrorPath = 120

// checkLevels reports, as a *SchemaError wrapping ErrTooDeep, a column of
// s whose Parquet definition or repetition level would exceed maxLevel. The
// levels are counted as newWritePlan counts them: one per nullable field,
// and one more (definition and repetition) per array or map.
func checkLevels(s *StructType) error {
	for _, f := range s.Fields {
		if err := typeLevels(f.Type, f.Name, f.Nullable, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

func typeLevels(t DataType, path string, nullable bool, def, rep int) error {
	if nullable {
		def++
	}
	if def > maxLevel || rep > maxLevel {
		if len(path) > maxErrorPath {
			path = path[:maxErrorPath] + "…"
		}
		return &SchemaError{Row: -1, Path: path, Reason: fmt.Sprintf("nested deeper than the %d levels Parquet can encode", maxLevel), Err: ErrTooDeep}
	}
	switch t := t.(type) {
	case *StructType:
		for _, f := range t.Fields {
			if err := typeLevels(f.Type, joinPath(path, f.Name), f.Nullable, def, rep); err != nil {
				return err
			}
		}
	case *ArrayType:
		return typeLevels(t.ElementType, path+"[]", t.ContainsNull, def+1, rep+1)
	case *MapType:
		if err := typeLevels(t.KeyType, path+".key", false, def+1, rep+1); err != nil {
			return err
		}
		return typeLevels(t.ValueType, path+".value", t.ValueContainsNull, def+1, rep+1)
	}
	return nil
}

// rowPanic turns a panic recovered while shredding a row into a
// *SchemaError wrapping ErrEncoding, so that RejectBadRows rejects the row
// instead of failing every retry of the Append.
func rowPanic(p any) *SchemaError {
	return &SchemaError{Row: -1, Reason: fmt.Sprint(p), Err: ErrEncoding}
}

// filePanic turns a panic recovered while encoding a whole file into an
// error wrapping ErrEncoding.
func filePanic(p any) error {
	return fmt.Errorf("%w: %v", ErrEncoding, p)
}

// safeAddRow is addRow that recovers a panic into a *SchemaError.
func (e *fileEncoder) safeAddRow(row map[string]any, ignored int) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = rowPanic(p)
		}
	}()
	return e.addRow(row, ignored)
}

// fittedRows are an Append's rows shredded against the schema they fit.
type fittedRows struct {
	schema *StructType
	// shred is nil when every row was rejected.
	shred    *shreddedRows
	rejected []*SchemaError
}

// fitRows shreds rows for Append: against the current schema when they all
// fit it; otherwise, with opts.RejectBadRows, the rows that fit (see
// rejectBadRows), or with opts.SchemaEvolution, every row against the
// schema they evolve it to (see evolveRows).
//
// Rows are shredded against the current schema first: when they all fit,
// schema evolution has nothing to add (evolveRow changes the schema only
// for a row with a non-null key the schema lacks, which shredding
// rejects), so the per-row evolution pass runs only on failure, and its
// errors still come first.
//
// Rows holding *jsonx.RawObject values that fail to shred are materialized
// (materializeRows) and shredded again before anything else, so the rest
// sees only maps.
func (t *Table) fitRows(snap *Snapshot, in inRows, opts AppendOptions) (fittedRows, error) {
	schema := snap.metadata.Schema
	minRows := opts.MinRowsPerFile
	switch {
	case minRows == 0 && snap.configBool(propOptimizeWrite):
		minRows = -1 // one file per partition per write
	case minRows == 0:
		minRows = DefaultMinRowsPerFile
	}
	if in.vals != nil {
		// Rows by column that all fit are shredded from their values;
		// anything else is done from the row maps, as Append does it.
		shred, err := t.shredRows(snap, schema, in, minRows, opts)
		if err == nil {
			return fittedRows{schema: schema, shred: shred}, nil
		}
		rowsFallbacks.Add(1)
		in = mapRows(in.asMaps())
	}
	rows := in.maps
	shred, err := t.shredRows(snap, schema, in, minRows, opts)
	if err != nil && opts.RejectBadRows && (isSchemaError(err) || errors.Is(err, errRawFallback)) {
		// Row by row: checkRows decodes the raw objects only of the rows
		// that need it.
		return t.rejectBadRows(snap, rows, opts, minRows)
	}
	if err != nil {
		// The fast path of *jsonx.RawObject values (parquet_raw.go) gives
		// up on what it does not write as their maps would be: everything
		// from here on sees the maps, as if the caller had given them.
		if mat, ok := materializeRows(rows); ok {
			rawFallbacks.Add(1)
			rows = mat
			shred, err = t.shredRows(snap, schema, mapRows(rows), minRows, opts)
		}
	}
	switch {
	case err == nil:
		return fittedRows{schema: schema, shred: shred}, nil
	case opts.RejectBadRows && isSchemaError(err):
		return t.rejectBadRows(snap, rows, opts, minRows)
	case opts.SchemaEvolution:
		return t.evolveRows(snap, rows, opts, minRows, err)
	}
	return fittedRows{}, err
}

// rejectBadRows checks rows one by one (checkRows) and shreds those that
// fit against the schema they evolved it to; the others are rejected.
func (t *Table) rejectBadRows(snap *Snapshot, rows []map[string]any, opts AppendOptions, minRows int) (fittedRows, error) {
	schema, good, rejected, err := t.checkRows(snap, rows, opts.SchemaEvolution, opts.Casts)
	if err != nil {
		return fittedRows{}, err
	}
	if len(good) == 0 {
		return fittedRows{schema: schema, rejected: rejected}, nil
	}
	shred, err := t.shredRows(snap, schema, mapRows(good), minRows, opts)
	if err != nil {
		// checkRows shredded each good row against this schema.
		return fittedRows{}, fmt.Errorf("delta: rows checked one by one fail together: %w", err)
	}
	return fittedRows{schema: schema, shred: shred, rejected: rejected}, nil
}

// evolveRows evolves the schema with every row, in order, and shreds the
// rows against the result; a row that cannot evolve it fails the call.
// When no row changes the schema, shredErr (the failure against the
// current schema) is the answer.
func (t *Table) evolveRows(snap *Snapshot, rows []map[string]any, opts AppendOptions, minRows int, shredErr error) (fittedRows, error) {
	schema := snap.metadata.Schema
	order := declaredOrder(snap)
	// checkedWith[i] is the schema after row i's evolution: the
	// untypeable values it holds at keys that schema lacks are stored
	// as null, as by an Append of its own (see checkRows).
	checkedWith := make([]*StructType, len(rows))
	for i, r := range rows {
		ns, eerr := evolveRowFor(snap, schema, r, order)
		if eerr == nil && ns != schema {
			eerr = checkLevels(ns)
		}
		if eerr != nil {
			return fittedRows{}, withRow(eerr, i)
		}
		schema = ns
		checkedWith[i] = ns
	}
	if schema == snap.metadata.Schema {
		return fittedRows{}, shredErr
	}
	copied := false
	for i, r := range rows {
		if checkedWith[i] == schema {
			continue
		}
		if nr, changed := dropUntypeable(checkedWith[i], r); changed {
			if !copied {
				rows, copied = slices.Clone(rows), true
			}
			rows[i] = nr
		}
	}
	shred, err := t.shredRows(snap, schema, mapRows(rows), minRows, opts)
	if err != nil {
		return fittedRows{}, err
	}
	return fittedRows{schema: schema, shred: shred}, nil
}

func isSchemaError(err error) bool {
	var se *SchemaError
	return errors.As(err, &se)
}

func withRow(err error, row int) error {
	var se *SchemaError
	if errors.As(err, &se) {
		c := *se
		c.Row = row
		return &c
	}
	return err
}

// declaredOrder is the table's declared top-level column order (property
// kpipe.columnOrder), used to place inferred columns.
func declaredOrder(s *Snapshot) []string {
	v, ok := s.config(propColumnOrder)
	if !ok || v == "" {
		return nil
	}
	return strings.Split(v, ",")
}
