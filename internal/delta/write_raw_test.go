package delta

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"kpipe/internal/jsonx"
)

// rawBatch is one Append of a rawCase: JSON messages decoded with the
// case's lazy keys left as *jsonx.RawObject, then with (when set) applied
// to each row, e.g. to set members over its RawObjects.
type rawBatch struct {
	msgs []string
	with func(i int, row map[string]any)
	opts AppendOptions
	// fast: the RawObjects are expected to be shredded without falling
	// back to their maps.
	fast bool
}

// rawTwin appends the same batches to two fresh tables, one with the
// nested objects as RawObjects and one with them materialized, and checks
// after each that everything Append gives and the tables hold is the same:
// the result (rows, files, rejections, errors), the schema, the add
// actions (partition values, stats, the files' bytes) and the rows read
// back.
func rawTwin(t *testing.T, newTable func(t *testing.T) *Table, lazy []string, batches []rawBatch) {
	t.Helper()
	lz := map[string]bool{}
	for _, k := range lazy {
		lz[k] = true
	}
	rawTB, mapTB, rowsTB := newTable(t), newTable(t), newTable(t)
	for bi, b := range batches {
		var rawRows, mapRows []map[string]any
		for i, m := range b.msgs {
			r, err := jsonx.DecodeObjectOpts([]byte(m), 0, jsonx.DecodeOptions{Lazy: lz})
			if err != nil {
				t.Fatalf("batch %d msg %d: %v", bi, i, err)
			}
			if b.with != nil {
				b.with(i, r)
			}
			rawRows = append(rawRows, r)
			mapRows = append(mapRows, jsonx.Materialize(r).(map[string]any))
		}
		if !slices.ContainsFunc(rawRows, func(r map[string]any) bool { _, raw := jsonx.MaterializeMap(r); return raw }) {
			t.Fatalf("batch %d: no RawObject in the rows", bi)
		}
		var before []map[string]any
		for _, r := range rawRows {
			before = append(before, maps.Clone(r))
		}
		byColumn := rowsOf(rawRows)
		falls := rawFallbacks.Load()
		rawRes, rawErr := rawTB.Append(t.Context(), rawRows, b.opts)
		fell := rawFallbacks.Load() != falls
		mapRes, mapErr := mapTB.Append(t.Context(), mapRows, b.opts)
		if b.fast && fell {
			t.Errorf("batch %d: fell back to the maps", bi)
		}
		falls, rawFalls := rowsFallbacks.Load(), rawFallbacks.Load()
		rowsRes, rowsErr := rowsTB.AppendRows(t.Context(), byColumn, b.opts)
		if b.fast && rawFallbacks.Load() != rawFalls {
			t.Errorf("batch %d: AppendRows materialized the raw objects", bi)
		}
		// Rows that all fit are shredded from their values.
		fits := mapErr == nil && len(mapRes.Rejected) == 0 && !mapRes.SchemaChanged
		if fell := rowsFallbacks.Load() != falls; b.fast && fits && fell {
			t.Errorf("batch %d: AppendRows fell back to the row maps", bi)
		}
		sameAppend(t, bi, rowsTB, mapTB, rowsRes, rowsErr, mapRes, mapErr)
		for i := range rawRows {
			if !reflect.DeepEqual(rawRows[i], before[i]) {
				t.Fatalf("batch %d: Append changed row %d", bi, i)
			}
		}
		sameAppend(t, bi, rawTB, mapTB, rawRes, rawErr, mapRes, mapErr)
	}
}

// rowsOf is rows given by column, as AppendRows takes them: the columns
// are every key of rows, in key order, and one no row has (always nil);
// a key a row lacks is nil.
func rowsOf(rows []map[string]any) Rows {
	keys := map[string]bool{"never_given": true}
	for _, r := range rows {
		for k := range r {
			keys[k] = true
		}
	}
	out := Rows{Columns: slices.Sorted(maps.Keys(keys))}
	for _, r := range rows {
		vals := make([]any, len(out.Columns))
		for j, c := range out.Columns {
			vals[j] = r[c]
		}
		out.Values = append(out.Values, vals)
	}
	return out
}

func sameAppend(t *testing.T, bi int, rawTB, mapTB *Table, rawRes CommitResult, rawErr error, mapRes CommitResult, mapErr error) {
	t.Helper()
	if fmt.Sprint(rawErr) != fmt.Sprint(mapErr) {
		t.Fatalf("batch %d: error\nraw %v\nmap %v", bi, rawErr, mapErr)
	}
	rs, _ := rawTB.Snapshot(t.Context())
	ms, _ := mapTB.Snapshot(t.Context())
	rn, mn := physicalNames(rs.Schema()), physicalNames(ms.Schema())
	if rawRes.Version != mapRes.Version || rawRes.Rows != mapRes.Rows || rawRes.Files != mapRes.Files || rawRes.SchemaChanged != mapRes.SchemaChanged || rs.Version() != ms.Version() {
		t.Fatalf("batch %d: result\nraw %+v\nmap %+v", bi, rawRes, mapRes)
	}
	if fmt.Sprint(rawRes.Rejected) != fmt.Sprint(mapRes.Rejected) {
		t.Fatalf("batch %d: rejected\nraw %v\nmap %v", bi, rawRes.Rejected, mapRes.Rejected)
	}
	for i, se := range rawRes.Rejected {
		if se.Row != mapRes.Rejected[i].Row {
			t.Fatalf("batch %d: rejected row %d, map %d", bi, se.Row, mapRes.Rejected[i].Row)
		}
	}
	if a, b := rn.apply(jsonString(rs.Schema())), mn.apply(jsonString(ms.Schema())); a != b {
		t.Fatalf("batch %d: schema\nraw %s\nmap %s", bi, a, b)
	}
	if rawErr != nil || rawRes.Rows == 0 {
		return
	}
	ra, ma := addsOf(t, rawTB), addsOf(t, mapTB)
	if len(ra) != len(ma) {
		t.Fatalf("batch %d: %d add actions, map %d", bi, len(ra), len(ma))
	}
	for i := range ra {
		if !reflect.DeepEqual(ra[i].PartitionValues, ma[i].PartitionValues) && rn == nil {
			t.Fatalf("batch %d file %d: partition values %v, map %v", bi, i, ra[i].PartitionValues, ma[i].PartitionValues)
		}
		if a, b := rn.apply(ra[i].Stats), mn.apply(ma[i].Stats); a != b {
			t.Fatalf("batch %d file %d: stats\nraw %s\nmap %s", bi, i, a, b)
		}
		rc, _ := ra[i].NumRecords()
		mc, _ := ma[i].NumRecords()
		if rc != mc || rc == 0 {
			t.Fatalf("batch %d file %d: numRecords %d, map %d", bi, i, rc, mc)
		}
		if rn == nil {
			// Without column mapping (random physical names) the files
			// are the same bytes.
			rd, err := rawTB.Storage().Read(t.Context(), ra[i].Path)
			if err != nil {
				t.Fatal(err)
			}
			md, err := mapTB.Storage().Read(t.Context(), ma[i].Path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rd, md) {
				t.Fatalf("batch %d file %d: the files differ (%d and %d bytes)", bi, i, len(rd), len(md))
			}
		}
	}
	if a, b := readByID(t, rawTB), readByID(t, mapTB); !reflect.DeepEqual(a, b) {
		t.Fatalf("batch %d: rows read\nraw %v\nmap %v", bi, a, b)
	}
}

// physNames maps a column-mapped schema's physical names to the logical
// paths, to compare what two tables of the same logical schema hold.
type physNames map[string]string

func physicalNames(s *StructType) physNames {
	var out physNames
	var walk func(t DataType, path string)
	walk = func(t DataType, path string) {
		switch t := t.(type) {
		case *StructType:
			for _, f := range t.Fields {
				p := joinPath(path, f.Name)
				if pn, ok := f.Metadata[metaPhysicalName].(string); ok {
					if out == nil {
						out = physNames{}
					}
					out[pn] = "<" + p + ">"
				}
				walk(f.Type, p)
			}
		case *ArrayType:
			walk(t.ElementType, path+"[]")
		case *MapType:
			walk(t.KeyType, path+".key")
			walk(t.ValueType, path+".value")
		}
	}
	walk(s, "")
	return out
}

// apply replaces the physical names in the JSON text s by the logical
// paths and gives it with its object keys sorted.
func (p physNames) apply(s string) string {
	if p == nil {
		return s
	}
	for pn, l := range p {
		s = strings.ReplaceAll(s, pn, l)
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// addsOf are the add actions of the table's last commit, in order.
func addsOf(t *testing.T, tb *Table) []AddFile {
	t.Helper()
	var out []AddFile
	for _, a := range lastCommit(t, tb, tb.Storage()) {
		if a.Add != nil {
			out = append(out, *a.Add)
		}
	}
	return out
}

// readByID reads the table's rows sorted by their first string key
// (event_id or id).
func readByID(t *testing.T, tb *Table) []map[string]any {
	t.Helper()
	snap, err := tb.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(t.Context(), tb.Storage(), snap)
	if err != nil {
		t.Fatal(err)
	}
	key := "id"
	if snap.Schema().Field("event_id") != nil {
		key = "event_id"
	}
	slices.SortStableFunc(rows, func(a, b map[string]any) int {
		return strings.Compare(fmt.Sprint(a[key]), fmt.Sprint(b[key]))
	})
	return rows
}

func rawSpecTable(t *testing.T) *Table {
	t.Helper()
	return createSpecTable(t, newMemStorage(), WithAutoCompact(AutoCompact{Disable: true}))
}

// specMsg is a SPEC message of event i with the given nested objects.
func specMsg(i int, task, orig, proj string) string {
	return fmt.Sprintf(`{"event_id":"evt-%03d","event_type":"CUSTOM_TASK_ASSIGNED","event_timestamp":"2026-01-10T12:%02d:00Z",`+
		`"processed_timestamp":"2026-01-10T12:%02d:01Z","task_id":32513,"assignment_id":%d,"project_id":"p%d",`+
		`"task_status":"assigned","task_name":"n","year":2026,"month":1,"day":%d,`+
		`"claimx_task_full":%s,"original_event":%s,"project_data":%s}`,
		i, i%60, i%60, 1000+i, i, 10+i%2, task, orig, proj)
}

// specTask is a claimx_task_full object of event i: escapes, non-ASCII,
// integers and floats, nested structs, arrays of structs, nulls, and (by
// i) absent fields.
func specTask(i int, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"task_id":32513,"assignment_id":%d,`, 1000+i)
	if i%4 == 0 {
		b.WriteString(`"status":null,`)
	} else {
		fmt.Fprintf(&b, `"status":"assigned-%d",`, i%3)
	}
	fmt.Fprintf(&b, `"title":"caf\u00e9 \"q\" ✓ ü\n%d\\","score":%d.5,"count":%d,"big":12345678901234567890,`, i, i, i)
	if i%3 != 0 {
		b.WriteString(`"ok":true,"form":{"name":"iTel \u2713","version":` + fmt.Sprint(i%5) + `,` +
			`"fields":[{"k":"a","v":1},{"k":"b","v":2.25,"note":null},null]},`)
	} else if i%5 == 0 {
		b.WriteString(`"form":null,`)
	}
	if i%2 == 0 {
		b.WriteString(`"tags":["x","y\u0000z"],`)
	} else {
		b.WriteString(`"tags":[],`)
	}
	b.WriteString(`"none":null` + extra + `}`)
	return b.String()
}

func specOrig(i int) string {
	return fmt.Sprintf(`{"event_id":"evt-%03d","raw":{"n":%d,"f":-0.0,"neg":-%d,"e":1e3}}`, i, i, i)
}

func specProj(i int) string {
	if i%3 == 0 {
		return "null"
	}
	return fmt.Sprintf(`{"project_id":"p%d","tags":["a","b"],"items":[{"sku":"s%d","qty":%d},{"sku":"t","qty":1.5}]}`, i, i, i%7)
}

func specBatch(from, n int, task func(i int) string) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, specMsg(i, task(i), specOrig(i), specProj(i)))
	}
	return out
}

var specLazy = []string{"claimx_task_full", "original_event", "project_data"}

func TestAppendRawObjectsSpecTable(t *testing.T) {
	plain := func(i int) string { return specTask(i, "") }
	evolve := AppendOptions{SchemaEvolution: true}
	rawTwin(t, rawSpecTable, specLazy, []rawBatch{
		// The first rows infer the struct columns: evolution.
		{msgs: specBatch(0, 30, plain), opts: evolve},
		// The same shape again: the fast path.
		{msgs: specBatch(30, 30, plain), opts: evolve, fast: true},
		{msgs: specBatch(60, 30, plain), fast: true},
		// Members set over the objects: replacing (a string, a struct
		// as a map and as a RawObject, null) and adding a known field.
		{msgs: specBatch(90, 20, func(i int) string { return specTask(i, "") }), fast: true, with: func(i int, r map[string]any) {
			task := r["claimx_task_full"].(*jsonx.RawObject)
			task = task.With("status", fmt.Sprintf("set-%d", i)).With("title", nil)
			switch i % 3 {
			case 0:
				task = task.With("form", map[string]any{"name": "m", "version": float64(2), "fields": []any{map[string]any{"k": "z"}}})
			case 1:
				f, err := jsonx.NewRawObject(`{"name":"raw form","version":7,"fields":[{"k":"q","v":-3}]}`)
				if err != nil {
					t.Fatal(err)
				}
				task = task.With("form", f.With("name", "set form"))
			}
			r["claimx_task_full"] = task
			if p, ok := r["project_data"].(*jsonx.RawObject); ok {
				it, _ := jsonx.NewRawObject(`{"sku":"from set","qty":3}`)
				r["project_data"] = p.With("items", []any{it, nil, map[string]any{"sku": "m"}})
			}
		}},
		// A key given twice: the last one wins, as in a map.
		{msgs: specBatch(110, 10, func(i int) string { return specTask(i, `,"status":"second","count":99`) })},
		// A new nested field: evolution, from the maps.
		{msgs: specBatch(120, 10, func(i int) string { return specTask(i, `,"brand_new":{"x":"y","n":1}`) }), opts: evolve},
		{msgs: specBatch(130, 10, func(i int) string { return specTask(i, `,"brand_new":{"x":"z","n":2}`) }), opts: evolve, fast: true},
		// Keys the schema lacks with values nothing can be inferred from:
		// stored as null, without evolution.
		{msgs: specBatch(140, 10, func(i int) string {
			return specTask(i, `,"unknown_empty":[],"unknown_null":null,"unknown_obj":{"a":{}}`)
		})},
		// A key the schema lacks without evolution: the same error.
		{msgs: specBatch(150, 5, func(i int) string { return specTask(i, `,"surprise":1`) })},
		// A member set over the object that the schema lacks: evolution.
		{msgs: specBatch(160, 10, plain), opts: evolve, with: func(i int, r map[string]any) {
			r["claimx_task_full"] = r["claimx_task_full"].(*jsonx.RawObject).With("added_by_set", fmt.Sprint(i))
		}},
		// Type conflicts, rejected row by row (with evolution too).
		{msgs: specBatch(170, 12, func(i int) string {
			switch i % 4 {
			case 0:
				return specTask(i, `,"count":"not a number"`)
			case 1:
				return specTask(i, `,"form":"not an object","newer":true`)
			}
			return specTask(i, `,"newer":false`)
		}), opts: AppendOptions{SchemaEvolution: true, RejectBadRows: true}},
		// A type conflict without RejectBadRows: the same error.
		{msgs: specBatch(190, 5, func(i int) string { return specTask(i, `,"assignment_id":"x"`) })},
		// One type conflict among rows that fit, then rows that evolve
		// the schema among rows that fit (a worker's first flush into a
		// new table): checked row by row, without decoding the raw
		// objects of the rows that fit (fast).
		{msgs: specBatch(230, 40, func(i int) string {
			if i == 251 {
				return specTask(i, `,"count":"not a number"`)
			}
			return plain(i)
		}), opts: AppendOptions{SchemaEvolution: true, RejectBadRows: true}, fast: true},
		{msgs: specBatch(270, 40, func(i int) string {
			if i%10 == 3 {
				return specTask(i, fmt.Sprintf(`,"added_%d":%d`, i%20, i))
			}
			return plain(i)
		}), opts: AppendOptions{SchemaEvolution: true, RejectBadRows: true}, fast: true},
		{msgs: specBatch(200, 30, plain), fast: true},
	})
}

// customTable has what the SPEC table lacks: a NOT NULL nested field,
// integer, boolean, timestamp and decimal fields, maps (in a struct and as
// a column of structs) and arrays of structs; column mapping by props.
func customTable(props map[string]string) func(t *testing.T) *Table {
	return func(t *testing.T) *Table {
		t.Helper()
		schema, err := ParseSchema(`{"type":"struct","fields":[` +
			`{"name":"id","type":"string","nullable":false,"metadata":{}},` +
			`{"name":"st","type":{"type":"struct","fields":[` +
			`{"name":"a","type":"string","nullable":false,"metadata":{}},` +
			`{"name":"n","type":"long","nullable":true,"metadata":{}},` +
			`{"name":"i","type":"integer","nullable":true,"metadata":{}},` +
			`{"name":"d","type":"double","nullable":true,"metadata":{}},` +
			`{"name":"b","type":"boolean","nullable":true,"metadata":{}},` +
			`{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},` +
			`{"name":"dec","type":"decimal(10,2)","nullable":true,"metadata":{}},` +
			`{"name":"m","type":{"type":"map","keyType":"string","valueType":"long","valueContainsNull":true},"nullable":true,"metadata":{}},` +
			`{"name":"l","type":{"type":"array","elementType":{"type":"struct","fields":[` +
			`{"name":"x","type":"string","nullable":true,"metadata":{}},{"name":"y","type":"long","nullable":true,"metadata":{}}]},"containsNull":true},"nullable":true,"metadata":{}},` +
			`{"name":"inner","type":{"type":"struct","fields":[{"name":"z","type":"string","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}}` +
			`]},"nullable":true,"metadata":{}},` +
			`{"name":"mc","type":{"type":"map","keyType":"string","valueType":{"type":"struct","fields":[{"name":"q","type":"string","nullable":true,"metadata":{}}]},"valueContainsNull":true},"nullable":true,"metadata":{}},` +
			`{"name":"p","type":"long","nullable":true,"metadata":{}}]}`)
		if err != nil {
			t.Fatal(err)
		}
		store := newMemStorage()
		tb, err := Create(t.Context(), store, TableDef{Name: "raw", Schema: schema, PartitionColumns: []string{"p"}, Properties: props}, WithAutoCompact(AutoCompact{Disable: true}))
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
}

func customMsg(i int, st string) string {
	return fmt.Sprintf(`{"id":"r%03d","p":%d,"st":%s,"mc":{"k%d":{"q":"v"}}}`, i, i%2, st, i)
}

func customSt(i int, extra string) string {
	return fmt.Sprintf(`{"a":"a%d","n":%d,"i":%d,"d":%d,"b":%v,"ts":"2026-01-10T12:00:%02dZ","dec":%d.25,`+
		`"m":{"x":%d},"l":[{"x":"e","y":%d},null,{"y":-1}],"inner":{"z":"\u00fc%d"}%s}`,
		i, i*1000, i-5, i, i%2 == 0, i%60, i, i, i, i, extra)
}

func customBatch(from, n int, st func(i int) string) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, customMsg(i, st(i)))
	}
	return out
}

func TestAppendRawObjectsCustomTable(t *testing.T) {
	for _, mode := range []string{"", "name"} {
		t.Run("mapping="+mode, func(t *testing.T) {
			var props map[string]string
			if mode != "" {
				props = map[string]string{"delta.columnMapping.mode": mode}
			}
			plain := func(i int) string { return customSt(i, "") }
			rawTwin(t, customTable(props), []string{"st", "mc"}, []rawBatch{
				{msgs: customBatch(0, 20, plain), fast: true},
				// Absent fields, nulls, empty lists, floats into long and
				// integer, integers into double.
				{msgs: customBatch(20, 10, func(i int) string {
					return fmt.Sprintf(`{"a":"only %d","n":%d.0,"d":%d,"l":[],"m":{},"inner":null,"b":null}`, i, i, i)
				}), fast: true},
				// A NOT NULL nested field null, absent: the same error...
				{msgs: customBatch(30, 3, func(i int) string { return `{"a":null}` })},
				{msgs: customBatch(33, 3, func(i int) string { return `{"n":1}` })},
				// ...and the same rejections, with values out of range.
				{msgs: customBatch(40, 10, func(i int) string {
					switch i % 5 {
					case 0:
						return `{"n":1}`
					case 1:
						return customSt(i, `,"a":null`)
					case 2:
						return `{"a":"x","i":3000000000}`
					case 3:
						return `{"a":"x","dec":"abc"}`
					}
					return customSt(i, "")
				}), opts: AppendOptions{RejectBadRows: true}},
				// A member set over the object that is NOT NULL, set to null.
				{msgs: customBatch(50, 4, plain), opts: AppendOptions{RejectBadRows: true}, with: func(i int, r map[string]any) {
					if i%2 == 0 {
						r["st"] = r["st"].(*jsonx.RawObject).With("a", nil)
					}
				}},
				// RawObjects as the values of a map column's map.
				{msgs: customBatch(60, 5, plain), fast: true, with: func(i int, r map[string]any) {
					q, err := jsonx.NewRawObject(fmt.Sprintf(`{"q":"in map %d"}`, i))
					if err != nil {
						t.Fatal(err)
					}
					r["mc"] = map[string]any{"k": q}
				}},
				{msgs: customBatch(70, 20, plain), fast: true},
			})
		})
	}
}

// FuzzAppendRawObjects: any JSON object, given as a RawObject nested in
// the SPEC table's rows (with evolution and RejectBadRows), appends
// exactly as its map does.
func FuzzAppendRawObjects(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":"x","c":[1,2.5],"d":{"e":null}}`,
		`{"a":1,"a":"dup"}`,
		`{"s":"\u00e9\ud83d\ude00","n":-0,"f":1e300}`,
		`{"l":[{"x":1},{"x":"conflict"}],"m":{}}`,
		`{"deep":{"deeper":{"deepest":[[1],[2,3]]}},"t":true,"z":false}`,
		`{}`,
		`{"a":"x","n":3000000000,"i":3000000000,"d":1,"b":null,"m":{"k":1.5},"l":[{"x":"y","y":2},null,{}],"inner":{"z":null}}`,
		`{"a":"x","ts":"2026-01-10T00:00:00Z","dec":"1.25","l":[],"m":{}}`,
	} {
		f.Add(s, `{"n":5,"x":"y"}`)
	}
	// Two unknown typed columns in a row: the error names the same one.
	f.Add(`{"l":[{"x":1},{"x":"conflict"}],"m":{}}`, `{}`)
	// Keys that differ by case only.
	f.Add(`{"l":[{"x":1}]}`, `{"X":0,"x":"0"}`)
	f.Fuzz(func(t *testing.T, a, b string) {
		var msgs []string
		for i, obj := range []string{a, b, a, b} {
			if _, err := jsonx.NewRawObject(obj); err != nil {
				return
			}
			msgs = append(msgs, specMsg(i, specTask(i, ""), obj, obj))
		}
		rawTwin(t, rawSpecTable, specLazy, []rawBatch{
			{msgs: msgs[:2], opts: AppendOptions{SchemaEvolution: true, RejectBadRows: true}},
			{msgs: msgs[2:], opts: AppendOptions{SchemaEvolution: true, RejectBadRows: true}},
			{msgs: msgs[2:]},
		})
		// The same objects as the struct of a fixed schema (NOT NULL,
		// integer, map and list fields).
		cm := []string{customMsg(0, a), customMsg(1, b), customMsg(2, customSt(2, ""))}
		rawTwin(t, customTable(nil), []string{"st", "mc"}, []rawBatch{
			{msgs: cm, opts: AppendOptions{RejectBadRows: true}},
			{msgs: cm},
		})
	})
}

// TestRawObjectCoerceAndEvolve: CoerceRow, ValidateRow, CoerceColumn,
// CoerceValue, InferType and schema evolution treat a RawObject as its
// map, at any depth.
func TestRawObjectCoerceAndEvolve(t *testing.T) {
	schema, err := ParseSchema(`{"type":"struct","fields":[` +
		`{"name":"id","type":"string","nullable":false,"metadata":{}},` +
		`{"name":"st","type":{"type":"struct","fields":[` +
		`{"name":"a","type":"string","nullable":false,"metadata":{}},` +
		`{"name":"n","type":"long","nullable":true,"metadata":{}},` +
		`{"name":"l","type":{"type":"array","elementType":{"type":"struct","fields":[{"name":"x","type":"string","nullable":true,"metadata":{}}]},"containsNull":true},"nullable":true,"metadata":{}}` +
		`]},"nullable":true,"metadata":{}},` +
		`{"name":"s","type":"string","nullable":true,"metadata":{}},` +
		`{"name":"arr","type":{"type":"array","elementType":"long","containsNull":true},"nullable":true,"metadata":{}},` +
		`{"name":"m","type":{"type":"map","keyType":"string","valueType":"long","valueContainsNull":true},"nullable":true,"metadata":{}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	raw := func(s string) *jsonx.RawObject {
		r, err := jsonx.NewRawObject(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	values := []any{
		raw(`{"a":"x","n":1,"l":[{"x":"y"},null]}`),
		raw(`{"a":"x","n":1.5}`),
		raw(`{"a":null}`),
		raw(`{"n":2}`),
		raw(`{"a":"x","new":{"deep":[1,2]}}`),
		raw(`{"a":"x","new":[],"none":null,"obj":{"e":{}}}`),
		raw(`{"a":"x","a":"dup"}`),
		raw(`{"a":"x"}`).With("l", []any{raw(`{"x":"set"}`), raw(`{"x":1}`)}),
		raw(`{"a":"x"}`).With("a", nil),
		raw(`{}`),
	}
	for vi, v := range values {
		mat := jsonx.Materialize(v)
		for _, col := range []string{"st", "s", "arr", "m"} {
			if m, _ := mat.(map[string]any); col == "m" && len(m) > 1 {
				// Which entry of a map a conflict names depends on
				// map order, for maps too.
				continue
			}
			row := map[string]any{"id": "i", col: v}
			mrow := map[string]any{"id": "i", col: mat}
			got, gerr := CoerceRow(schema, row)
			want, werr := CoerceRow(schema, mrow)
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
				t.Errorf("value %d in %s: CoerceRow %v %v, map %v %v", vi, col, got, gerr, want, werr)
			}
			if fmt.Sprint(ValidateRow(schema, row)) != fmt.Sprint(werr) {
				t.Errorf("value %d in %s: ValidateRow differs", vi, col)
			}
			ft := schema.Field(col).Type
			gc, gerr := CoerceColumn(ft, v, col, CastToString)
			wc, werr := CoerceColumn(ft, mat, col, CastToString)
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || (gerr == nil && !reflect.DeepEqual(jsonx.Materialize(gc), wc)) {
				t.Errorf("value %d in %s: CoerceColumn %v %v, map %v %v", vi, col, gc, gerr, wc, werr)
			}
			gv, gerr := CoerceValue(ft, v, col, CastNone)
			wv, werr := CoerceValue(ft, mat, col, CastNone)
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || !reflect.DeepEqual(gv, wv) {
				t.Errorf("value %d in %s: CoerceValue %v %v, map %v %v", vi, col, gv, gerr, wv, werr)
			}
			gs, gerr := evolveRow(schema, row, nil)
			ws, werr := evolveRow(schema, mrow, nil)
			if fmt.Sprint(gerr) != fmt.Sprint(werr) || (gerr == nil && !TypesEqual(gs, ws)) {
				t.Errorf("value %d in %s: evolveRow %v %v, map %v %v", vi, col, gs, gerr, ws, werr)
			}
			if untypeable(v) != untypeable(mat) {
				t.Errorf("value %d: untypeable differs", vi)
			}
		}
		gt, gok := InferType(v)
		wt, wok := InferType(mat)
		if gok != wok || (gok && !TypesEqual(gt, wt)) {
			t.Errorf("value %d: InferType %v %v, map %v %v", vi, gt, gok, wt, wok)
		}
	}
	// A RawObject is an object in messages.
	_, err = CoerceColumn(&ArrayType{ElementType: TypeLong}, values[0], "arr", CastNone)
	if err == nil || !strings.Contains(err.Error(), "object value is not an array") {
		t.Fatalf("CoerceColumn: %v", err)
	}
}
