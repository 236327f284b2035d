package delta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// DataType is a Delta column type: a PrimitiveType, *DecimalType,
// *StructType, *ArrayType or *MapType.
type DataType interface {
	// String returns the type in Delta's simple form, e.g. "long",
	// "decimal(10,2)", "struct<a:long>", "array<string>".
	String() string
	isDataType()
}

// PrimitiveType is a Delta primitive type, named as in the schema JSON.
type PrimitiveType string

// The primitive types.
const (
	TypeString       PrimitiveType = "string"
	TypeLong         PrimitiveType = "long"
	TypeInteger      PrimitiveType = "integer"
	TypeShort        PrimitiveType = "short"
	TypeByte         PrimitiveType = "byte"
	TypeFloat        PrimitiveType = "float"
	TypeDouble       PrimitiveType = "double"
	TypeBoolean      PrimitiveType = "boolean"
	TypeBinary       PrimitiveType = "binary"
	TypeDate         PrimitiveType = "date"
	TypeTimestamp    PrimitiveType = "timestamp"
	TypeTimestampNTZ PrimitiveType = "timestamp_ntz"
	// TypeVariant is the variant type (the variantType feature): read as
	// JSON text, never written.
	TypeVariant PrimitiveType = "variant"
)

var primitiveTypes = map[string]PrimitiveType{
	"string": TypeString, "long": TypeLong, "integer": TypeInteger, "short": TypeShort,
	"byte": TypeByte, "float": TypeFloat, "double": TypeDouble, "boolean": TypeBoolean,
	"binary": TypeBinary, "date": TypeDate, "timestamp": TypeTimestamp,
	"timestamp_ntz": TypeTimestampNTZ,
}

func (t PrimitiveType) String() string { return string(t) }
func (PrimitiveType) isDataType()      {}

// DecimalType is decimal(Precision, Scale).
type DecimalType struct {
	Precision, Scale int
}

func (t *DecimalType) String() string { return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale) }
func (*DecimalType) isDataType()      {}

// StructType is a struct column or the table schema itself.
type StructType struct {
	Fields []*StructField
}

// StructField is one field of a StructType.
type StructField struct {
	Name     string
	Type     DataType
	Nullable bool
	// Metadata is the field's metadata map, kept as decoded (numbers as
	// json.Number) so it round-trips.
	Metadata map[string]any
}

func (t *StructType) String() string {
	var b strings.Builder
	b.WriteString("struct<")
	for i, f := range t.Fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f.Name + ":" + f.Type.String())
	}
	b.WriteByte('>')
	return b.String()
}
func (*StructType) isDataType() {}

// Field returns the field named name, or nil.
func (t *StructType) Field(name string) *StructField {
	for _, f := range t.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// FieldIndex returns the index of the field named name, or -1.
func (t *StructType) FieldIndex(name string) int {
	for i, f := range t.Fields {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// ArrayType is array<ElementType>.
type ArrayType struct {
	ElementType  DataType
	ContainsNull bool
}

func (t *ArrayType) String() string { return "array<" + t.ElementType.String() + ">" }
func (*ArrayType) isDataType()      {}

// MapType is map<KeyType,ValueType>.
type MapType struct {
	KeyType           DataType
	ValueType         DataType
	ValueContainsNull bool
}

func (t *MapType) String() string {
	return "map<" + t.KeyType.String() + "," + t.ValueType.String() + ">"
}
func (*MapType) isDataType() {}

// Copy returns a deep copy of the struct type (metadata maps are shared).
func (t *StructType) Copy() *StructType {
	if t == nil {
		return nil
	}
	out := &StructType{Fields: make([]*StructField, len(t.Fields))}
	for i, f := range t.Fields {
		nf := *f
		nf.Type = copyType(f.Type)
		out.Fields[i] = &nf
	}
	return out
}

func copyType(t DataType) DataType {
	switch t := t.(type) {
	case *StructType:
		return t.Copy()
	case *ArrayType:
		return &ArrayType{ElementType: copyType(t.ElementType), ContainsNull: t.ContainsNull}
	case *MapType:
		return &MapType{KeyType: copyType(t.KeyType), ValueType: copyType(t.ValueType), ValueContainsNull: t.ValueContainsNull}
	case *DecimalType:
		c := *t
		return &c
	}
	return t
}

// TypesEqual reports whether two types are the same, ignoring field
// metadata.
func TypesEqual(a, b DataType) bool {
	switch a := a.(type) {
	case PrimitiveType:
		bb, ok := b.(PrimitiveType)
		return ok && a == bb
	case *DecimalType:
		bb, ok := b.(*DecimalType)
		return ok && *a == *bb
	case *ArrayType:
		bb, ok := b.(*ArrayType)
		return ok && a.ContainsNull == bb.ContainsNull && TypesEqual(a.ElementType, bb.ElementType)
	case *MapType:
		bb, ok := b.(*MapType)
		return ok && a.ValueContainsNull == bb.ValueContainsNull && TypesEqual(a.KeyType, bb.KeyType) && TypesEqual(a.ValueType, bb.ValueType)
	case *StructType:
		bb, ok := b.(*StructType)
		if !ok || len(a.Fields) != len(bb.Fields) {
			return false
		}
		for i, f := range a.Fields {
			g := bb.Fields[i]
			if f.Name != g.Name || f.Nullable != g.Nullable || !TypesEqual(f.Type, g.Type) {
				return false
			}
		}
		return true
	}
	return false
}

// --- JSON ---

var decimalRE = regexp.MustCompile(`^decimal\(\s*(\d+)\s*,\s*(-?\d+)\s*\)$`)

// ParseSchema parses a Delta schema string (the metaData schemaString).
func ParseSchema(schemaString string) (*StructType, error) {
	if strings.TrimSpace(schemaString) == "" {
		return &StructType{}, nil
	}
	dec := json.NewDecoder(strings.NewReader(schemaString))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("delta: parsing schema: %w", err)
	}
	t, err := typeFromJSON(raw, "")
	if err != nil {
		return nil, fmt.Errorf("delta: parsing schema: %w", err)
	}
	st, ok := t.(*StructType)
	if !ok {
		return nil, fmt.Errorf("delta: parsing schema: top level is %s, want struct", t)
	}
	return st, nil
}

func typeFromJSON(raw any, path string) (DataType, error) {
	switch v := raw.(type) {
	case string:
		if p, ok := primitiveTypes[v]; ok {
			return p, nil
		}
		if m := decimalRE.FindStringSubmatch(v); m != nil {
			p, _ := strconv.Atoi(m[1])
			s, _ := strconv.Atoi(m[2])
			if p < 1 || p > 38 || s < 0 || s > p {
				return nil, fmt.Errorf("%s: invalid %s", pathOr(path), v)
			}
			return &DecimalType{Precision: p, Scale: s}, nil
		}
		if v == "decimal" {
			return &DecimalType{Precision: 10, Scale: 0}, nil
		}
		if v == string(TypeVariant) {
			return TypeVariant, nil
		}
		return nil, fmt.Errorf("%s: %w: type %q", pathOr(path), ErrUnsupportedFeature, v)
	case map[string]any:
		kind, _ := v["type"].(string)
		switch kind {
		case "struct":
			fields, ok := v["fields"].([]any)
			if !ok && v["fields"] != nil {
				return nil, fmt.Errorf("%s: struct fields is not an array", pathOr(path))
			}
			st := &StructType{Fields: make([]*StructField, 0, len(fields))}
			seen := map[string]bool{}
			for _, rf := range fields {
				fm, ok := rf.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("%s: struct field is not an object", pathOr(path))
				}
				name, ok := fm["name"].(string)
				if !ok {
					return nil, fmt.Errorf("%s: struct field without a name", pathOr(path))
				}
				fp := joinPath(path, name)
				if seen[strings.ToLower(name)] {
					return nil, fmt.Errorf("%s: duplicate field name", fp)
				}
				seen[strings.ToLower(name)] = true
				ft, err := typeFromJSON(fm["type"], fp)
				if err != nil {
					return nil, err
				}
				nullable := true
				if n, ok := fm["nullable"].(bool); ok {
					nullable = n
				}
				md, _ := fm["metadata"].(map[string]any)
				st.Fields = append(st.Fields, &StructField{Name: name, Type: ft, Nullable: nullable, Metadata: md})
			}
			return st, nil
		case "array":
			et, err := typeFromJSON(v["elementType"], path+"[]")
			if err != nil {
				return nil, err
			}
			cn := true
			if b, ok := v["containsNull"].(bool); ok {
				cn = b
			}
			return &ArrayType{ElementType: et, ContainsNull: cn}, nil
		case "map":
			kt, err := typeFromJSON(v["keyType"], path+".key")
			if err != nil {
				return nil, err
			}
			vt, err := typeFromJSON(v["valueType"], path+".value")
			if err != nil {
				return nil, err
			}
			vcn := true
			if b, ok := v["valueContainsNull"].(bool); ok {
				vcn = b
			}
			return &MapType{KeyType: kt, ValueType: vt, ValueContainsNull: vcn}, nil
		}
		return nil, fmt.Errorf("%s: unknown type %q", pathOr(path), kind)
	}
	return nil, fmt.Errorf("%s: invalid type %v", pathOr(path), raw)
}

func pathOr(p string) string {
	if p == "" {
		return "schema"
	}
	return "column " + strconv.Quote(p)
}

func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// MarshalJSON encodes the schema as Delta's schema JSON.
func (t *StructType) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := writeTypeJSON(&b, t); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// SchemaString returns the schema as the one-line JSON of metaData.schemaString.
func (t *StructType) SchemaString() string {
	b, _ := t.MarshalJSON()
	return string(b)
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s)
	b.Write(enc)
}

func writeTypeJSON(b *bytes.Buffer, t DataType) error {
	switch t := t.(type) {
	case PrimitiveType:
		writeJSONString(b, string(t))
	case *DecimalType:
		writeJSONString(b, t.String())
	case *StructType:
		b.WriteString(`{"type":"struct","fields":[`)
		for i, f := range t.Fields {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"name":`)
			writeJSONString(b, f.Name)
			b.WriteString(`,"type":`)
			if err := writeTypeJSON(b, f.Type); err != nil {
				return err
			}
			b.WriteString(`,"nullable":` + strconv.FormatBool(f.Nullable) + `,"metadata":`)
			if len(f.Metadata) == 0 {
				b.WriteString("{}")
			} else {
				md, err := json.Marshal(f.Metadata)
				if err != nil {
					return err
				}
				b.Write(md)
			}
			b.WriteByte('}')
		}
		b.WriteString("]}")
	case *ArrayType:
		b.WriteString(`{"type":"array","elementType":`)
		if err := writeTypeJSON(b, t.ElementType); err != nil {
			return err
		}
		b.WriteString(`,"containsNull":` + strconv.FormatBool(t.ContainsNull) + "}")
	case *MapType:
		b.WriteString(`{"type":"map","keyType":`)
		if err := writeTypeJSON(b, t.KeyType); err != nil {
			return err
		}
		b.WriteString(`,"valueType":`)
		if err := writeTypeJSON(b, t.ValueType); err != nil {
			return err
		}
		b.WriteString(`,"valueContainsNull":` + strconv.FormatBool(t.ValueContainsNull) + "}")
	default:
		return fmt.Errorf("delta: cannot encode type %T", t)
	}
	return nil
}

// UnmarshalJSON decodes Delta's schema JSON.
func (t *StructType) UnmarshalJSON(b []byte) error {
	st, err := ParseSchema(string(b))
	if err != nil {
		return err
	}
	*t = *st
	return nil
}
