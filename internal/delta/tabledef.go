package delta

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// tableDefFile is the YAML form of a TableDef (config/tables/*.yaml).
type tableDefFile struct {
	// Name is the table name (metaData.name).
	Name string `yaml:"name"`
	// Description is metaData.description; optional.
	Description string `yaml:"description"`
	// Columns in table order.
	Columns []columnDef `yaml:"columns"`
	// PartitionColumns name columns to partition by, in directory order.
	PartitionColumns []string `yaml:"partition_columns"`
	// Properties are table properties (metaData.configuration).
	Properties map[string]string `yaml:"properties"`
}

// columnDef is one column or nested field.
type columnDef struct {
	// Name of the column; not used for array elements and map keys/values.
	Name string `yaml:"name"`
	// Type is a Delta primitive type name (string, long, integer, short,
	// byte, double, float, boolean, binary, date, timestamp, timestamp_ntz,
	// decimal(P,S)) or struct, array or map.
	Type string `yaml:"type"`
	// Nullable defaults to true; false is SQL's NOT NULL.
	Nullable *bool `yaml:"nullable"`
	// Inferred marks a struct whose fields come from the data (no fields
	// here); it joins the Delta schema on the first write with a value.
	Inferred bool `yaml:"inferred"`
	// Comment goes into the field metadata as "comment".
	Comment string `yaml:"comment"`
	// Fields of a struct.
	Fields []columnDef `yaml:"fields"`
	// Element of an array; Key and Value of a map.
	Element *columnDef `yaml:"element"`
	Key     *columnDef `yaml:"key"`
	Value   *columnDef `yaml:"value"`
}

// LoadTableDef reads a table definition YAML file. Decoding is strict:
// unknown fields are errors; errors name the file and line.
func LoadTableDef(path string) (TableDef, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return TableDef{}, fmt.Errorf("table definition: %w", err)
	}
	def, err := ParseTableDef(data)
	if err != nil {
		return TableDef{}, fmt.Errorf("%s: %w", path, err)
	}
	return def, nil
}

// ParseTableDef parses the YAML of a table definition.
func ParseTableDef(data []byte) (TableDef, error) {
	var f tableDefFile
	dec := yaml.NewDecoder(bytes.NewReader(data), yaml.DisallowUnknownField())
	if err := dec.Decode(&f); err != nil {
		return TableDef{}, errors.New(yaml.FormatError(err, false, false))
	}
	var errs []error
	at := func(yamlPath string) string {
		if l := yamlLine(data, yamlPath); l > 0 {
			return fmt.Sprintf("line %d: ", l)
		}
		return ""
	}
	def := TableDef{Name: f.Name, Description: f.Description, PartitionColumns: f.PartitionColumns, Properties: f.Properties, Schema: &StructType{}}
	if f.Name == "" {
		errs = append(errs, errors.New(at("$.name")+"name is required"))
	}
	for i, c := range f.Columns {
		p := fmt.Sprintf("$.columns[%d]", i)
		sf, err := c.field(p, at)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c.Inferred {
			def.Inferred = append(def.Inferred, c.Name)
		}
		def.Schema.Fields = append(def.Schema.Fields, sf)
	}
	if len(errs) == 0 {
		if err := def.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return TableDef{}, errors.Join(errs...)
	}
	return def, nil
}

func (c columnDef) field(p string, at func(string) string) (*StructField, error) {
	if c.Name == "" {
		return nil, errors.New(at(p) + "column without a name")
	}
	t, err := c.dataType(p, at)
	if err != nil {
		return nil, err
	}
	sf := &StructField{Name: c.Name, Type: t, Nullable: c.Nullable == nil || *c.Nullable}
	if c.Comment != "" {
		sf.Metadata = map[string]any{"comment": c.Comment}
	}
	return sf, nil
}

func (c columnDef) dataType(p string, at func(string) string) (DataType, error) {
	name := strings.TrimSpace(c.Type)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s%s: %s", at(p+".type"), strings.TrimPrefix(p, "$."), fmt.Sprintf(format, args...))
	}
	if c.Inferred && name != "struct" {
		return nil, bad("inferred columns must be of type struct")
	}
	switch name {
	case "struct":
		if c.Inferred {
			if len(c.Fields) > 0 {
				return nil, bad("an inferred struct declares no fields")
			}
			return &StructType{}, nil
		}
		if len(c.Fields) == 0 {
			return nil, bad("struct needs fields (or inferred: true)")
		}
		st := &StructType{}
		for i, fc := range c.Fields {
			sf, err := fc.field(fmt.Sprintf("%s.fields[%d]", p, i), at)
			if err != nil {
				return nil, err
			}
			st.Fields = append(st.Fields, sf)
		}
		return st, nil
	case "array":
		if c.Element == nil {
			return nil, bad("array needs element")
		}
		et, err := c.Element.dataType(p+".element", at)
		if err != nil {
			return nil, err
		}
		return &ArrayType{ElementType: et, ContainsNull: c.Element.Nullable == nil || *c.Element.Nullable}, nil
	case "map":
		if c.Key == nil || c.Value == nil {
			return nil, bad("map needs key and value")
		}
		kt, err := c.Key.dataType(p+".key", at)
		if err != nil {
			return nil, err
		}
		vt, err := c.Value.dataType(p+".value", at)
		if err != nil {
			return nil, err
		}
		return &MapType{KeyType: kt, ValueType: vt, ValueContainsNull: c.Value.Nullable == nil || *c.Value.Nullable}, nil
	}
	if len(c.Fields) > 0 || c.Element != nil || c.Key != nil || c.Value != nil {
		return nil, bad("type %s takes no fields, element, key or value", name)
	}
	t, err := typeFromJSON(name, "")
	if err != nil || t == TypeVariant {
		return nil, bad("unknown type %q", name)
	}
	return t, nil
}

// yamlLine returns the line of the node at a YAML path, or 0.
func yamlLine(data []byte, path string) int {
	p, err := yaml.PathString(path)
	if err != nil {
		return 0
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return 0
	}
	n, err := p.FilterFile(f)
	if err != nil || n == nil || n.GetToken() == nil {
		return 0
	}
	return n.GetToken().Position.Line
}
