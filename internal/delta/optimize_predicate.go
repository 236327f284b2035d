package delta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Predicate is a filter over a table's top-level columns, parsed by
// ParsePredicate, that decides which data files may hold matching rows:
// exactly by a file's partition values, and by its min/max/nullCount
// statistics for the other columns (a file without statistics for a column
// may match). Safe for concurrent use.
type Predicate struct {
	text  string
	root  *predNode
	parts []string
	cols  []string // top-level columns named, in order of first mention
	// key maps a column to its name in partitionValues and statistics:
	// its column mapping physical name, when the schema field has one.
	key map[string]string
}

// keyOf is the name of column c in partitionValues and statistics.
func (p *Predicate) keyOf(c string) string {
	if k, ok := p.key[c]; ok {
		return k
	}
	return c
}

type predOp int

const (
	opAnd predOp = iota
	opOr
	opEq
	opNe
	opLt
	opLe
	opGt
	opGe
	opIn
	opNotIn
	opIsNull
	opNotNull
)

// predNode is an AND/OR of children, or a comparison of a column with
// literals. NOT is pushed down at parse time (see negate), so every node
// is one of these.
type predNode struct {
	op       predOp
	children []*predNode
	col      string
	typ      DataType
	vals     []any // typed like the column (parsePartitionValue); nil is NULL
}

// ErrPredicate reports a predicate that does not parse or does not fit the
// table (unknown column, a literal of the wrong type).
var ErrPredicate = fmt.Errorf("delta: bad predicate")

// ParsePredicate parses a SQL-like predicate over schema's top-level
// primitive columns:
//
//	year = 2024 AND month IN (1, 2) AND task_status <> 'done'
//	(day >= 10 OR day IS NULL) AND NOT task_id < 5
//
// Comparisons are =, ==, !=, <>, <, <=, >, >=, [NOT] IN (…) and IS [NOT]
// NULL, a column on the left and a literal on the right: a number, a
// 'quoted string' (” is a quote), TRUE, FALSE or NULL; combined with AND,
// OR, NOT and parentheses. A column is a bare name or `quoted`. A literal
// is read as the column's type reads a partition value ('2024-05-01' for a
// date, an RFC 3339 time for a timestamp). Comparing with NULL is never
// true, as in SQL. partCols are the table's partition columns
// (PartitionOnly reports whether only they are named).
func ParsePredicate(schema *StructType, partCols []string, s string) (*Predicate, error) {
	p := &predParser{src: s, schema: schema}
	if err := p.lex(); err != nil {
		return nil, err
	}
	if len(p.toks) == 0 {
		return nil, fmt.Errorf("%w: empty predicate", ErrPredicate)
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("%w: unexpected %q at offset %d of %q", ErrPredicate, p.toks[p.pos].text, p.toks[p.pos].off, s)
	}
	key := map[string]string{}
	for _, c := range p.cols {
		if f := schema.Field(c); f != nil {
			if pn, _ := f.Metadata[metaPhysicalName].(string); pn != "" {
				key[c] = pn
			}
		}
	}
	return &Predicate{text: s, root: n, parts: slices.Clone(partCols), cols: p.cols, key: key}, nil
}

// String returns the predicate as given.
func (p *Predicate) String() string { return p.text }

// Columns returns the columns the predicate names.
func (p *Predicate) Columns() []string { return slices.Clone(p.cols) }

// PartitionOnly reports whether every column the predicate names is a
// partition column, so that it selects whole files exactly.
func (p *Predicate) PartitionOnly() bool {
	for _, c := range p.cols {
		if !slices.Contains(p.parts, c) {
			return false
		}
	}
	return true
}

// MayMatch reports whether file f may hold a row the predicate accepts:
// false only when its partition values or statistics prove none does.
func (p *Predicate) MayMatch(f AddFile) bool {
	st := parseFileStats(f.Stats)
	return p.root.mayMatch(p, f, st)
}

// Prune returns the files that may hold a matching row (MayMatch), in order.
func (p *Predicate) Prune(files []AddFile) []AddFile {
	var out []AddFile
	for _, f := range files {
		if p.MayMatch(f) {
			out = append(out, f)
		}
	}
	return out
}

// fileStats is a data file's statistics JSON, columns still raw.
type fileStats struct {
	NumRecords *int64                     `json:"numRecords"`
	MinValues  map[string]json.RawMessage `json:"minValues"`
	MaxValues  map[string]json.RawMessage `json:"maxValues"`
	NullCount  map[string]json.RawMessage `json:"nullCount"`
}

func parseFileStats(s string) *fileStats {
	if s == "" {
		return nil
	}
	var st fileStats
	if json.Unmarshal([]byte(s), &st) != nil {
		return nil
	}
	return &st
}

// statValue reads a min or max statistic as the column's type.
func statValue(raw json.RawMessage, t DataType) (any, bool) {
	if raw == nil {
		return nil, false
	}
	var text string
	if len(raw) > 0 && raw[0] == '"' {
		if json.Unmarshal(raw, &text) != nil {
			return nil, false
		}
	} else {
		text = string(bytes.TrimSpace(raw))
	}
	v, err := parsePartitionValue(t, text)
	if err != nil || v == nil {
		return nil, false
	}
	return v, true
}

func (n *predNode) mayMatch(p *Predicate, f AddFile, st *fileStats) bool {
	switch n.op {
	case opAnd:
		for _, c := range n.children {
			if !c.mayMatch(p, f, st) {
				return false
			}
		}
		return true
	case opOr:
		for _, c := range n.children {
			if c.mayMatch(p, f, st) {
				return true
			}
		}
		return false
	}
	if slices.Contains(p.parts, n.col) {
		v, err := parsePartitionValue(n.typ, f.PartitionValues[p.keyOf(n.col)])
		if err != nil {
			return true // an unreadable value: do not prune on it
		}
		return n.test(v)
	}
	if st == nil {
		st = &fileStats{}
	}
	var nulls, rows int64 = -1, -1
	if st.NumRecords != nil {
		rows = *st.NumRecords
	}
	if raw, ok := st.NullCount[p.keyOf(n.col)]; ok {
		_ = json.Unmarshal(raw, &nulls)
	}
	switch n.op {
	case opIsNull:
		return nulls != 0
	case opNotNull:
		return nulls < 0 || rows < 0 || nulls < rows
	}
	if nulls >= 0 && rows >= 0 && nulls == rows {
		return false // only nulls: no comparison is true
	}
	lo, okLo := statValue(st.MinValues[p.keyOf(n.col)], n.typ)
	hi, okHi := statValue(st.MaxValues[p.keyOf(n.col)], n.typ)
	if okHi {
		switch n.typ {
		case TypeTimestamp, TypeTimestampNTZ:
			// Statistics of timestamps are truncated to milliseconds.
			hi = hi.(time.Time).Add(time.Millisecond - time.Nanosecond)
		}
	}
	// Unknown bounds are open: lo = -inf, hi = +inf.
	geLo := func(v any) bool { return !okLo || cmpValues(v, lo) >= 0 }
	leHi := func(v any) bool { return !okHi || cmpValues(v, hi) <= 0 }
	switch n.op {
	case opEq, opIn:
		for _, v := range n.vals {
			if v != nil && geLo(v) && leHi(v) {
				return true
			}
		}
		return false
	case opNe, opNotIn:
		if slices.Contains(n.vals, nil) {
			return false // x <> NULL, x NOT IN (…, NULL): never true
		}
		if !okLo || !okHi || cmpValues(lo, hi) != 0 {
			return true
		}
		for _, v := range n.vals {
			if cmpValues(v, lo) == 0 {
				return false
			}
		}
		return true
	case opLt:
		return n.vals[0] != nil && (!okLo || cmpValues(lo, n.vals[0]) < 0)
	case opLe:
		return n.vals[0] != nil && geLo(n.vals[0])
	case opGt:
		return n.vals[0] != nil && (!okHi || cmpValues(hi, n.vals[0]) > 0)
	case opGe:
		return n.vals[0] != nil && leHi(n.vals[0])
	}
	return true
}

// test evaluates a comparison on one value, as SQL does (a comparison
// with NULL is not true).
func (n *predNode) test(v any) bool {
	switch n.op {
	case opIsNull:
		return v == nil
	case opNotNull:
		return v != nil
	}
	if v == nil {
		return false
	}
	switch n.op {
	case opIn, opEq:
		for _, x := range n.vals {
			if x != nil && cmpValues(v, x) == 0 {
				return true
			}
		}
		return false
	case opNotIn, opNe:
		for _, x := range n.vals {
			if x == nil || cmpValues(v, x) == 0 {
				return false
			}
		}
		return true
	}
	x := n.vals[0]
	if x == nil {
		return false
	}
	c := cmpValues(v, x)
	switch n.op {
	case opLt:
		return c < 0
	case opLe:
		return c <= 0
	case opGt:
		return c > 0
	case opGe:
		return c >= 0
	}
	return false
}

// negate returns NOT n, pushed down to the comparisons. It is exact under
// SQL's three-valued logic: NOT (x = 1) and x <> 1 are both unknown for a
// null x.
func negate(n *predNode) *predNode {
	m := *n
	switch n.op {
	case opAnd, opOr:
		m.op = opAnd + opOr - n.op
		m.children = make([]*predNode, len(n.children))
		for i, c := range n.children {
			m.children[i] = negate(c)
		}
	case opEq:
		m.op = opNe
	case opNe:
		m.op = opEq
	case opLt:
		m.op = opGe
	case opGe:
		m.op = opLt
	case opGt:
		m.op = opLe
	case opLe:
		m.op = opGt
	case opIn:
		m.op = opNotIn
	case opNotIn:
		m.op = opIn
	case opIsNull:
		m.op = opNotNull
	case opNotNull:
		m.op = opIsNull
	}
	return &m
}

// --- parsing ---

type predTok struct {
	kind byte // 'i' identifier, 'k' keyword, 'n' number, 's' string, 'p' punctuation
	text string
	off  int
}

type predParser struct {
	src    string
	schema *StructType
	toks   []predTok
	pos    int
	cols   []string
}

var predKeywords = []string{"AND", "OR", "NOT", "IN", "IS", "NULL", "TRUE", "FALSE"}

func (p *predParser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '(' || c == ')' || c == ',':
			p.toks = append(p.toks, predTok{'p', string(c), i})
			i++
		case strings.ContainsRune("=!<>", c):
			j := i + 1
			if j < len(s) && strings.ContainsRune("=>", rune(s[j])) {
				j++
			}
			op := s[i:j]
			if !slices.Contains([]string{"=", "==", "!=", "<>", "<", "<=", ">", ">="}, op) {
				return fmt.Errorf("%w: unknown operator %q at offset %d of %q", ErrPredicate, op, i, s)
			}
			p.toks = append(p.toks, predTok{'p', op, i})
			i = j
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return fmt.Errorf("%w: unterminated string at offset %d of %q", ErrPredicate, i, s)
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			p.toks = append(p.toks, predTok{'s', b.String(), i})
			i = j + 1
		case c == '`' || c == '"':
			j := strings.IndexByte(s[i+1:], s[i])
			if j < 0 {
				return fmt.Errorf("%w: unterminated quoted name at offset %d of %q", ErrPredicate, i, s)
			}
			p.toks = append(p.toks, predTok{'i', s[i+1 : i+1+j], i})
			i += j + 2
		case c == '-' || c == '+' || c == '.' || unicode.IsDigit(c):
			j := i + 1
			for j < len(s) && (unicode.IsDigit(rune(s[j])) || strings.IndexByte(".eE+-", s[j]) >= 0) {
				if (s[j] == '+' || s[j] == '-') && s[j-1] != 'e' && s[j-1] != 'E' {
					break
				}
				j++
			}
			p.toks = append(p.toks, predTok{'n', s[i:j], i})
			i = j
		case c == '_' || unicode.IsLetter(c):
			j := i + 1
			for j < len(s) && (s[j] == '_' || unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j]))) {
				j++
			}
			w := s[i:j]
			if slices.Contains(predKeywords, strings.ToUpper(w)) {
				p.toks = append(p.toks, predTok{'k', strings.ToUpper(w), i})
			} else {
				p.toks = append(p.toks, predTok{'i', w, i})
			}
			i = j
		default:
			return fmt.Errorf("%w: unexpected %q at offset %d of %q", ErrPredicate, c, i, s)
		}
	}
	return nil
}

func (p *predParser) peek() (predTok, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return predTok{}, false
}

func (p *predParser) accept(kind byte, text string) bool {
	if t, ok := p.peek(); ok && t.kind == kind && t.text == text {
		p.pos++
		return true
	}
	return false
}

func (p *predParser) errAt(want string) error {
	if t, ok := p.peek(); ok {
		return fmt.Errorf("%w: want %s, got %q at offset %d of %q", ErrPredicate, want, t.text, t.off, p.src)
	}
	return fmt.Errorf("%w: want %s at the end of %q", ErrPredicate, want, p.src)
}

func (p *predParser) parseOr() (*predNode, error) {
	return p.parseList(opOr, "OR", p.parseAnd)
}

func (p *predParser) parseAnd() (*predNode, error) {
	return p.parseList(opAnd, "AND", p.parseNot)
}

func (p *predParser) parseList(op predOp, kw string, next func() (*predNode, error)) (*predNode, error) {
	n, err := next()
	if err != nil {
		return nil, err
	}
	if t, ok := p.peek(); !ok || t.kind != 'k' || t.text != kw {
		return n, nil
	}
	list := &predNode{op: op, children: []*predNode{n}}
	for p.accept('k', kw) {
		c, err := next()
		if err != nil {
			return nil, err
		}
		list.children = append(list.children, c)
	}
	return list, nil
}

func (p *predParser) parseNot() (*predNode, error) {
	if p.accept('k', "NOT") {
		n, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return negate(n), nil
	}
	if p.accept('p', "(") {
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if !p.accept('p', ")") {
			return nil, p.errAt("')'")
		}
		return n, nil
	}
	return p.parseComparison()
}

func (p *predParser) parseComparison() (*predNode, error) {
	t, ok := p.peek()
	if !ok || t.kind != 'i' {
		return nil, p.errAt("a column name")
	}
	p.pos++
	f := p.schema.Field(t.text)
	if f == nil {
		return nil, fmt.Errorf("%w: unknown column %q (the table has %s)", ErrPredicate, t.text, strings.Join(fieldNames(p.schema), ", "))
	}
	if _, ok := f.Type.(PrimitiveType); !ok {
		if _, dec := f.Type.(*DecimalType); !dec {
			return nil, fmt.Errorf("%w: column %q is a %s: only columns of primitive types can be compared", ErrPredicate, t.text, f.Type)
		}
	}
	if !slices.Contains(p.cols, f.Name) {
		p.cols = append(p.cols, f.Name)
	}
	n := &predNode{col: f.Name, typ: f.Type}
	if p.accept('k', "IS") {
		n.op = opIsNull
		if p.accept('k', "NOT") {
			n.op = opNotNull
		}
		if !p.accept('k', "NULL") {
			return nil, p.errAt("NULL")
		}
		return n, nil
	}
	not := p.accept('k', "NOT")
	if p.accept('k', "IN") {
		n.op = opIn
		if not {
			n.op = opNotIn
		}
		if !p.accept('p', "(") {
			return nil, p.errAt("'('")
		}
		for {
			v, err := p.literal(f)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, v)
			if p.accept('p', ")") {
				return n, nil
			}
			if !p.accept('p', ",") {
				return nil, p.errAt("',' or ')'")
			}
		}
	}
	if not {
		return nil, p.errAt("IN")
	}
	op, ok := p.peek()
	ops := map[string]predOp{"=": opEq, "==": opEq, "!=": opNe, "<>": opNe, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe}
	if _, known := ops[op.text]; !ok || op.kind != 'p' || !known {
		return nil, p.errAt("a comparison (=, <>, <, <=, >, >=, IN, IS NULL)")
	}
	p.pos++
	n.op = ops[op.text]
	v, err := p.literal(f)
	if err != nil {
		return nil, err
	}
	n.vals = []any{v}
	return n, nil
}

// literal reads a literal as column f's type.
func (p *predParser) literal(f *StructField) (any, error) {
	t, ok := p.peek()
	if !ok || t.kind == 'p' || t.kind == 'i' || t.kind == 'k' && !slices.Contains([]string{"NULL", "TRUE", "FALSE"}, t.text) {
		return nil, p.errAt("a literal (number, 'string', TRUE, FALSE, NULL)")
	}
	p.pos++
	if t.kind == 'k' && t.text == "NULL" {
		return nil, nil
	}
	text := t.text
	if t.kind == 'k' {
		text = strings.ToLower(text)
	}
	if t.kind == 's' && text == "" && f.Type != TypeString && f.Type != TypeBinary {
		return nil, fmt.Errorf("%w: '' is not a %s value for column %q", ErrPredicate, f.Type, f.Name)
	}
	v, err := parsePartitionValue(f.Type, text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not a %s value for column %q", ErrPredicate, t.text, f.Type, f.Name)
	}
	if v == nil { // '' for a string column is the empty string, not NULL
		v = text
		if f.Type == TypeBinary {
			v = []byte{}
		}
	}
	return v, nil
}

func fieldNames(s *StructType) []string {
	out := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		out[i] = f.Name
	}
	return out
}

// cmpValues orders two non-null values of one column type (as
// parsePartitionValue and ReadFile make them). Values of different kinds
// compare by kind name, which only keeps sorting total.
func cmpValues(a, b any) int {
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case []byte:
		if y, ok := b.([]byte); ok {
			return bytes.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0
			case !x:
				return -1
			}
			return 1
		}
	case float32:
		if y, ok := b.(float32); ok {
			return cmpFloat(float64(x), float64(y))
		}
	case float64:
		if y, ok := b.(float64); ok {
			return cmpFloat(x, y)
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	case Decimal:
		if y, ok := b.(Decimal); ok && x.Unscaled != nil && y.Unscaled != nil {
			if x.Scale == y.Scale {
				return x.Unscaled.Cmp(y.Unscaled)
			}
			return strings.Compare(x.String(), y.String()) // not reached: one column, one scale
		}
	}
	if xi, ok, err := toInt64(a); ok && err == nil {
		if yi, ok, err := toInt64(b); ok && err == nil {
			switch {
			case xi < yi:
				return -1
			case xi > yi:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(fmt.Sprintf("%T", a), fmt.Sprintf("%T", b))
}

func cmpFloat(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	case x == y:
		return 0
	}
	// NaN sorts last, as Spark orders it.
	xn, yn := x != x, y != y
	switch {
	case xn && yn:
		return 0
	case xn:
		return 1
	}
	return -1
}
