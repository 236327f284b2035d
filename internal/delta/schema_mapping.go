package delta

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
)

// Column mapping (PROTOCOL.md "Column Mapping"): in name and id mode every
// column and nested field has a physical name and a 32-bit id in its field
// metadata. Data files name their columns by physical name and carry the
// id as the Parquet field_id; partition values and stats are keyed by
// physical name. Readers resolve a file's columns by physical name (name
// mode) or by field_id (id mode). A column added by schema evolution gets
// the next id and a fresh physical name "col-<uuid>", and the commit raises
// delta.columnMapping.maxColumnId.

const (
	metaColumnMappingID   = "delta.columnMapping.id"
	metaPhysicalName      = "delta.columnMapping.physicalName"
	propColumnMappingMode = "delta.columnMapping.mode"
	propMaxColumnID       = "delta.columnMapping.maxColumnId"
)

// mappingMode is the table's column mapping mode: "name", "id", or ""
// (none). The property counts only when the protocol supports the feature
// (reader 2, or columnMapping among the reader features).
func mappingMode(s *Snapshot) string {
	m := columnMappingMode(s)
	if m != "name" && m != "id" {
		return ""
	}
	return m
}

// physicalOf returns the physical name and id of a mapped field at path.
func physicalOf(f *StructField, path string) (string, int, error) {
	name, _ := f.Metadata[metaPhysicalName].(string)
	id, ok := metaInt(f.Metadata[metaColumnMappingID])
	if name == "" || !ok {
		return "", 0, fmt.Errorf("%w: column %q has no column mapping metadata (%s, %s) in a column-mapped table", ErrCorruptLog, path, metaPhysicalName, metaColumnMappingID)
	}
	return name, int(id), nil
}

// physicalName is the name of field f in data files, stats and partition
// values under mode.
func physicalName(f *StructField, mode string) string {
	if mode == "" {
		return f.Name
	}
	if n, _ := f.Metadata[metaPhysicalName].(string); n != "" {
		return n
	}
	return f.Name
}

// fieldID is f's column mapping id, 0 when none.
func fieldID(f *StructField) int {
	id, _ := metaInt(f.Metadata[metaColumnMappingID])
	return int(id)
}

// physicalPartitionColumns returns the physical names of the partition
// columns, or nil when they are the logical names.
func physicalPartitionColumns(s *Snapshot) []string {
	mode := mappingMode(s)
	if mode == "" {
		return nil
	}
	out := make([]string, len(s.metadata.PartitionColumns))
	for i, pc := range s.metadata.PartitionColumns {
		out[i] = pc
		if f := s.metadata.Schema.Field(pc); f != nil {
			out[i] = physicalName(f, mode)
		}
	}
	return out
}

// partitionKeyColumns returns the names of the partition columns in
// partitionValues and partition folders: physical under column mapping.
func partitionKeyColumns(s *Snapshot) []string {
	if pc := physicalPartitionColumns(s); pc != nil {
		return pc
	}
	return s.metadata.PartitionColumns
}

// partitionValue returns the serialized partition value of column pc in an
// add's partitionValues, looked up by physical name under column mapping.
func partitionValue(s *Snapshot, f *StructField, values map[string]string) string {
	if mode := mappingMode(s); mode != "" {
		if v, ok := values[physicalName(f, mode)]; ok {
			return v
		}
	}
	return values[f.Name]
}

func metaInt(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		return n, err == nil
	case float64:
		return int64(x), x == float64(int64(x))
	case int:
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

// maxColumnID is the highest column mapping id of the table: the
// delta.columnMapping.maxColumnId property or any id in schema, whichever
// is higher.
func maxColumnID(conf map[string]string, schema *StructType) int64 {
	m, _ := strconv.ParseInt(conf[propMaxColumnID], 10, 64)
	walkFields(schema, "", func(_ string, f *StructField) {
		if id, ok := metaInt(f.Metadata[metaColumnMappingID]); ok {
			m = max(m, id)
		}
	})
	return m
}

// assignColumnMapping gives every field of schema without column mapping
// metadata the next id above *maxID and a fresh physical name, copying the
// fields it changes (schemas are never modified in place). It returns
// schema itself when every field had its metadata.
func assignColumnMapping(schema *StructType, maxID *int64) *StructType {
	t, changed := assignMappingType(schema, maxID)
	if !changed {
		return schema
	}
	return t.(*StructType)
}

func assignMappingType(t DataType, maxID *int64) (DataType, bool) {
	switch t := t.(type) {
	case *StructType:
		var out *StructType
		for i, f := range t.Fields {
			_, hasName := f.Metadata[metaPhysicalName].(string)
			_, hasID := metaInt(f.Metadata[metaColumnMappingID])
			var nf *StructField
			if !hasName || !hasID {
				c := *f
				c.Metadata = maps.Clone(f.Metadata)
				if c.Metadata == nil {
					c.Metadata = map[string]any{}
				}
				*maxID++
				c.Metadata[metaColumnMappingID] = json.Number(strconv.FormatInt(*maxID, 10))
				c.Metadata[metaPhysicalName] = "col-" + newUUID()
				nf = &c
			}
			ft := f.Type
			if nt, ch := assignMappingType(ft, maxID); ch {
				if nf == nil {
					c := *f
					nf = &c
				}
				nf.Type = nt
			}
			if nf != nil {
				if out == nil {
					out = shallowStruct(t)
				}
				out.Fields[i] = nf
			}
		}
		if out == nil {
			return t, false
		}
		return out, true
	case *ArrayType:
		if et, ch := assignMappingType(t.ElementType, maxID); ch {
			c := *t
			c.ElementType = et
			return &c, true
		}
	case *MapType:
		kt, kch := assignMappingType(t.KeyType, maxID)
		vt, vch := assignMappingType(t.ValueType, maxID)
		if kch || vch {
			c := *t
			c.KeyType, c.ValueType = kt, vt
			return &c, true
		}
	}
	return t, false
}

// sparkForbiddenChars are the characters Spark refuses in a column name of
// a table without column mapping (Parquet column names).
const sparkForbiddenChars = " ,;{}()\n\t="

// checkNewColumnNames returns a *SchemaError for the first field of
// evolved, not in old, whose name Spark forbids without column mapping.
func checkNewColumnNames(old, evolved DataType, path string) error {
	switch e := evolved.(type) {
	case *StructType:
		o, _ := old.(*StructType)
		for _, f := range e.Fields {
			p := joinPath(path, f.Name)
			var of *StructField
			if o != nil {
				of = o.Field(f.Name)
			}
			if of == nil {
				if err := checkColumnNames(f, p); err != nil {
					return err
				}
				continue
			}
			if err := checkNewColumnNames(of.Type, f.Type, p); err != nil {
				return err
			}
		}
	case *ArrayType:
		if o, ok := old.(*ArrayType); ok {
			return checkNewColumnNames(o.ElementType, e.ElementType, path+"[]")
		}
	case *MapType:
		if o, ok := old.(*MapType); ok {
			return checkNewColumnNames(o.ValueType, e.ValueType, path+".value")
		}
	}
	return nil
}

// checkColumnNames checks the name of f and of every field inside it.
func checkColumnNames(f *StructField, path string) error {
	if strings.ContainsAny(f.Name, sparkForbiddenChars) {
		return &SchemaError{Row: -1, Path: path, Reason: fmt.Sprintf("column name %q has a character of %q, which Delta tables without column mapping do not allow (enable delta.columnMapping.mode=name, or rename the field upstream)", f.Name, sparkForbiddenChars)}
	}
	var err error
	walkType(f.Type, path, func(p string, nf *StructField) {
		if err == nil && strings.ContainsAny(nf.Name, sparkForbiddenChars) {
			err = &SchemaError{Row: -1, Path: p, Reason: fmt.Sprintf("field name %q has a character of %q, which Delta tables without column mapping do not allow (enable delta.columnMapping.mode=name, or rename the field upstream)", nf.Name, sparkForbiddenChars)}
		}
	})
	return err
}

// evolveRowFor is evolveRow with the table's column naming rules: under
// column mapping new fields get ids and physical names; without it, new
// names with characters Spark forbids are refused.
func evolveRowFor(snap *Snapshot, schema *StructType, row map[string]any, order []string) (*StructType, error) {
	ns, err := evolveRow(schema, row, order)
	if err != nil || ns == schema {
		return ns, err
	}
	if err := checkCaseClash(ns, ""); err != nil {
		return nil, err
	}
	if mappingMode(snap) == "" {
		if err := checkNewColumnNames(schema, ns, ""); err != nil {
			return nil, err
		}
		return ns, nil
	}
	maxID := maxColumnID(snap.metadata.Configuration, ns)
	return assignColumnMapping(ns, &maxID), nil
}

// checkCaseClash returns a *SchemaError for a struct in t with two fields
// whose names differ only by case, such as a new struct column inferred
// from {"X":0,"x":"0"}: ParseSchema refuses that schema, so a commit of it
// would leave the table unreadable.
func checkCaseClash(t DataType, path string) error {
	switch t := t.(type) {
	case *StructType:
		seen := make(map[string]string, len(t.Fields))
		for _, f := range t.Fields {
			p := joinPath(path, f.Name)
			l := strings.ToLower(f.Name)
			if prev, ok := seen[l]; ok {
				return &SchemaError{Row: -1, Path: p, Reason: "field name differs from field " + prev + " only by case"}
			}
			seen[l] = f.Name
			if err := checkCaseClash(f.Type, p); err != nil {
				return err
			}
		}
	case *ArrayType:
		return checkCaseClash(t.ElementType, path+"[]")
	case *MapType:
		return checkCaseClash(t.ValueType, path+".value")
	}
	return nil
}

// evolvedMetadata is the metaData action of a commit that changes the
// schema of snap to schema: under column mapping it raises
// delta.columnMapping.maxColumnId to the highest id in schema.
func evolvedMetadata(snap *Snapshot, schema *StructType) *Metadata {
	m := *snap.metadata
	m.Schema = schema
	m.SchemaString = schema.SchemaString()
	if mappingMode(snap) != "" {
		m.Configuration = maps.Clone(m.Configuration)
		if m.Configuration == nil {
			m.Configuration = map[string]string{}
		}
		m.Configuration[propMaxColumnID] = strconv.FormatInt(maxColumnID(m.Configuration, schema), 10)
	}
	return &m
}
