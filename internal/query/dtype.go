package query

import (
	"slices"
	"strings"
)

// dtype is a parsed DuckDB type name as the driver reports it
// (ColumnTypeDatabaseTypeName): "BIGINT", "DECIMAL(10,2)", "VARCHAR[]",
// "INTEGER[3]", "MAP(VARCHAR, BIGINT)", `STRUCT("a" BIGINT, "b c" VARCHAR)`,
// `UNION("n" INTEGER, "s" VARCHAR)`. The formatter needs it for what scanned
// Go values lose: the order of struct fields and which time.Time is a DATE.
type dtype struct {
	name   string   // upper-case base name: STRUCT, LIST, MAP, UNION, TIMESTAMPTZ, ...
	fields []dfield // STRUCT fields and UNION members, in order
	elem   *dtype   // LIST and ARRAY element
	key    *dtype   // MAP key
	val    *dtype   // MAP value
}

type dfield struct {
	name string
	typ  *dtype
}

var unknownType = &dtype{name: "UNKNOWN"}

// parseType parses a type name; whatever it cannot parse becomes a type
// without children, which formats values generically.
func parseType(s string) *dtype {
	p := typeParser{s: s}
	t := p.parse()
	if t == nil {
		return &dtype{name: strings.ToUpper(s)}
	}
	return t
}

type typeParser struct {
	s string
	i int
}

func (p *typeParser) skipSpace() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *typeParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *typeParser) parse() *dtype {
	p.skipSpace()
	start := p.i
	for p.i < len(p.s) && (isWordByte(p.s[p.i]) || (p.s[p.i] == ' ' && p.i+1 < len(p.s) && isWordByte(p.s[p.i+1]) && p.wordContinues())) {
		p.i++
	}
	if p.i == start {
		return nil
	}
	t := &dtype{name: strings.ToUpper(strings.TrimSpace(p.s[start:p.i]))}
	if p.peek() == '(' {
		p.i++
		switch t.name {
		case "STRUCT", "UNION":
			for {
				p.skipSpace()
				name, ok := p.name()
				if !ok {
					return nil
				}
				ft := p.parse()
				if ft == nil {
					return nil
				}
				t.fields = append(t.fields, dfield{name, ft})
				p.skipSpace()
				if p.peek() == ',' {
					p.i++
					continue
				}
				break
			}
		case "MAP":
			t.key = p.parse()
			p.skipSpace()
			if p.peek() != ',' || t.key == nil {
				return nil
			}
			p.i++
			t.val = p.parse()
			if t.val == nil {
				return nil
			}
		default: // DECIMAL(w,s) and the like
			for p.i < len(p.s) && p.s[p.i] != ')' {
				p.i++
			}
		}
		p.skipSpace()
		if p.peek() != ')' {
			return nil
		}
		p.i++
	}
	for p.peek() == '[' {
		end := strings.IndexByte(p.s[p.i:], ']')
		if end < 0 {
			return nil
		}
		name := "LIST"
		if end > 1 {
			name = "ARRAY"
		}
		p.i += end + 1
		t = &dtype{name: name, elem: t}
	}
	return t
}

// wordContinues reports whether the space at p.i joins a multi-word type
// name ("TIMESTAMP WITH TIME ZONE", "DOUBLE PRECISION").
func (p *typeParser) wordContinues() bool {
	rest := strings.ToUpper(p.s[p.i+1:])
	for _, w := range []string{"WITH", "TIME", "ZONE", "PRECISION", "VARYING"} {
		if strings.HasPrefix(rest, w) {
			return true
		}
	}
	return false
}

// name reads a struct field name: "quoted" with "" escapes, or a bare word.
func (p *typeParser) name() (string, bool) {
	if p.peek() == '"' {
		var b strings.Builder
		p.i++
		for p.i < len(p.s) {
			c := p.s[p.i]
			p.i++
			if c == '"' {
				if p.peek() == '"' {
					b.WriteByte('"')
					p.i++
					continue
				}
				return b.String(), true
			}
			b.WriteByte(c)
		}
		return "", false
	}
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != ' ' {
		p.i++
	}
	return p.s[start:p.i], p.i > start
}

func isWordByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func (t *dtype) numeric() bool {
	switch t.name {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
		"UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "BIGNUM":
		return true
	}
	return false
}

func (t *dtype) elemType() *dtype {
	if t.elem == nil {
		return unknownType
	}
	return t.elem
}

func (t *dtype) mapTypes() (*dtype, *dtype) {
	k, v := t.key, t.val
	if k == nil {
		k = unknownType
	}
	if v == nil {
		v = unknownType
	}
	return k, v
}

func (t *dtype) member(tag string) *dtype {
	for _, f := range t.fields {
		if f.name == tag {
			return f.typ
		}
	}
	return unknownType
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortStrings(s []string) { slices.Sort(s) }
