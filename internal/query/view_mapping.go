package query

import (
	"fmt"
	"strings"

	"kpipe/internal/delta"
)

// Column mapping (Delta's name and id modes): data files name columns and
// struct fields by their physical names (delta.columnMapping.physicalName),
// and partition values are keyed by them. The view reads each column by
// its physical name, casts it to the Delta type spelled with physical
// field names (DuckDB casts structs by field name, so fields older files
// lack read as NULL), and renames nested fields to their logical names.
// Files are matched by name in both modes: Delta writers name the columns
// physically in id mode too.

const metaPhysicalName = "delta.columnMapping.physicalName"

// mappingMode is the table's column mapping mode, "" when off.
func mappingMode(md delta.Metadata) string {
	switch m := strings.ToLower(strings.TrimSpace(md.Configuration["delta.columnMapping.mode"])); m {
	case "name", "id":
		return m
	}
	return ""
}

// physicalName is f's name in the data files.
func physicalName(f *delta.StructField, mode string) string {
	if mode != "" {
		if n, _ := f.Metadata[metaPhysicalName].(string); n != "" {
			return n
		}
	}
	return f.Name
}

// physicalType is duckType with struct fields named physically.
func physicalType(t delta.DataType, mode string) string {
	switch t := t.(type) {
	case *delta.StructType:
		if len(t.Fields) == 0 || mode == "" {
			return duckType(t)
		}
		var b strings.Builder
		b.WriteString("STRUCT(")
		for i, f := range t.Fields {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(ident(physicalName(f, mode)) + " " + physicalType(f.Type, mode))
		}
		b.WriteString(")")
		return b.String()
	case *delta.ArrayType:
		return physicalType(t.ElementType, mode) + "[]"
	case *delta.MapType:
		return "MAP(" + physicalType(t.KeyType, mode) + ", " + physicalType(t.ValueType, mode) + ")"
	}
	return duckType(t)
}

// hasStruct reports whether t holds a struct (whose fields need renaming).
func hasStruct(t delta.DataType) bool {
	switch t := t.(type) {
	case *delta.StructType:
		return len(t.Fields) > 0
	case *delta.ArrayType:
		return hasStruct(t.ElementType)
	case *delta.MapType:
		return hasStruct(t.KeyType) || hasStruct(t.ValueType)
	}
	return false
}

// logicalExpr turns expr, a value of physicalType(t), into t with logical
// field names; depth names lambda variables apart.
func logicalExpr(expr string, t delta.DataType, mode string, depth int) string {
	if mode == "" || !hasStruct(t) {
		return expr
	}
	v := fmt.Sprintf("__kpipe_x%d", depth)
	switch t := t.(type) {
	case *delta.StructType:
		var b strings.Builder
		fmt.Fprintf(&b, "CASE WHEN (%s) IS NULL THEN NULL ELSE struct_pack(", expr)
		for i, f := range t.Fields {
			if i > 0 {
				b.WriteString(", ")
			}
			field := fmt.Sprintf("struct_extract(%s, %s)", expr, literal(physicalName(f, mode)))
			fmt.Fprintf(&b, "%s := %s", ident(f.Name), logicalExpr(field, f.Type, mode, depth+1))
		}
		b.WriteString(") END")
		return b.String()
	case *delta.ArrayType:
		return fmt.Sprintf("list_transform(%s, lambda %s: %s)", expr, v, logicalExpr(v, t.ElementType, mode, depth+1))
	case *delta.MapType:
		return fmt.Sprintf("map_from_entries(list_transform(map_entries(%s), lambda %s: struct_pack(key := %s, value := %s)))",
			expr, v, logicalExpr(v+".key", t.KeyType, mode, depth+1), logicalExpr(v+".value", t.ValueType, mode, depth+1))
	}
	return expr
}

// mappedColumn is the view's expression of data column f read from d.
func mappedColumn(f *delta.StructField, mode string) string {
	e := fmt.Sprintf("CAST(d.%s AS %s)", ident(physicalName(f, mode)), physicalType(f.Type, mode))
	return logicalExpr(e, f.Type, mode, 0)
}
