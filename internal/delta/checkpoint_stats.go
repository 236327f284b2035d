package delta

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Checkpoint columns for statistics and partition values (PROTOCOL.md
// "Checkpoints"): add.stats holds the stats JSON when the table property
// delta.checkpoint.writeStatsAsJson is true (the default); add.stats_parsed
// holds them typed, and add.partitionValues_parsed the partition values
// typed, when delta.checkpoint.writeStatsAsStruct is true (default false).
// A reader takes stats_parsed (and partitionValues_parsed) when the JSON
// form is absent, so a checkpoint this package writes keeps stats that
// another writer kept only in the struct form.

const (
	propStatsAsJSON   = "delta.checkpoint.writeStatsAsJson"
	propStatsAsStruct = "delta.checkpoint.writeStatsAsStruct"
)

func (s *Snapshot) configBoolDefault(key string, def bool) bool {
	v, ok := s.config(key)
	if !ok {
		return def
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true
	case "false":
		return false
	}
	return def
}

// statsParsedType is the type of add.stats_parsed for the table: numRecords,
// minValues and maxValues of the data columns that have min/max stats,
// nullCount of every data column, tightBounds.
func statsParsedType(s *Snapshot) *StructType {
	var data []*StructField
	for _, fl := range s.metadata.Schema.Fields {
		if !slices.Contains(s.metadata.PartitionColumns, fl.Name) {
			data = append(data, fl)
		}
	}
	out := &StructType{Fields: []*StructField{{Name: "numRecords", Type: TypeLong, Nullable: true}}}
	if mm := statsFields(s, data, false); len(mm.Fields) > 0 {
		out.Fields = append(out.Fields,
			&StructField{Name: "minValues", Type: mm, Nullable: true},
			&StructField{Name: "maxValues", Type: mm.Copy(), Nullable: true})
	}
	if nc := statsFields(s, data, true); len(nc.Fields) > 0 {
		out.Fields = append(out.Fields, &StructField{Name: "nullCount", Type: nc, Nullable: true})
	}
	out.Fields = append(out.Fields, &StructField{Name: "tightBounds", Type: TypeBoolean, Nullable: true})
	return out
}

// statsFields mirrors fields for minValues/maxValues (nulls false: the
// columns' own types, primitive columns that have min/max only) or for
// nullCount (nulls true: a long per column).
func statsFields(s *Snapshot, fields []*StructField, nulls bool) *StructType {
	out := &StructType{}
	for _, fl := range fields {
		name := physicalName(fl, mappingMode(s))
		switch t := fl.Type.(type) {
		case *StructType:
			if inner := statsFields(s, t.Fields, nulls); len(inner.Fields) > 0 {
				out.Fields = append(out.Fields, &StructField{Name: name, Type: inner, Nullable: true})
			}
		case *DecimalType:
			typ := DataType(t)
			if nulls {
				typ = TypeLong
			}
			out.Fields = append(out.Fields, &StructField{Name: name, Type: typ, Nullable: true})
		case PrimitiveType:
			switch {
			case nulls:
				out.Fields = append(out.Fields, &StructField{Name: name, Type: TypeLong, Nullable: true})
			case t != TypeBoolean && t != TypeBinary && t != TypeVariant:
				out.Fields = append(out.Fields, &StructField{Name: name, Type: t, Nullable: true})
			}
		default: // arrays and maps: null counts only
			if nulls {
				out.Fields = append(out.Fields, &StructField{Name: name, Type: TypeLong, Nullable: true})
			}
		}
	}
	return out
}

// partitionParsedType is the type of add.partitionValues_parsed, nil for an
// unpartitioned table.
func partitionParsedType(s *Snapshot) *StructType {
	if len(s.metadata.PartitionColumns) == 0 {
		return nil
	}
	out := &StructType{}
	for _, pc := range s.metadata.PartitionColumns {
		if fl := s.metadata.Schema.Field(pc); fl != nil {
			out.Fields = append(out.Fields, &StructField{Name: physicalName(fl, mappingMode(s)), Type: fl.Type, Nullable: true})
		}
	}
	return out
}

// checkpointSchemaFor is the schema of a checkpoint of s: stats as the
// table's properties ask, and a checkpointMetadata column on tables that
// support v2 checkpoints (their checkpoints follow the V2 spec).
func checkpointSchemaFor(s *Snapshot) *StructType {
	out := checkpointWriteSchema.Copy()
	add := out.Field("add").Type.(*StructType)
	if !s.configBoolDefault(propStatsAsJSON, true) {
		add.Fields = slices.DeleteFunc(add.Fields, func(f *StructField) bool { return f.Name == "stats" })
	}
	if s.configBoolDefault(propStatsAsStruct, false) {
		if pt := partitionParsedType(s); pt != nil && len(pt.Fields) > 0 {
			add.Fields = append(add.Fields, &StructField{Name: "partitionValues_parsed", Type: pt, Nullable: true})
		}
		add.Fields = append(add.Fields, &StructField{Name: "stats_parsed", Type: statsParsedType(s), Nullable: true})
	}
	if s.supportsV2Checkpoints() {
		out.Fields = append(out.Fields, &StructField{Name: "checkpointMetadata", Type: &StructType{Fields: []*StructField{
			{Name: "version", Type: TypeLong, Nullable: true},
			{Name: "tags", Type: &MapType{KeyType: TypeString, ValueType: TypeString, ValueContainsNull: true}, Nullable: true},
		}}, Nullable: true})
	}
	return out
}

func (s *Snapshot) supportsV2Checkpoints() bool {
	return s.protocol.MinWriterVersion >= 7 && slices.Contains(s.protocol.WriterFeatures, "v2Checkpoint")
}

// parsedStats converts a stats JSON string to the value of a stats_parsed
// column of type t; values that do not fit their column are left out.
func parsedStats(t *StructType, stats string) map[string]any {
	if stats == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(stats))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil {
		return nil
	}
	return fitStruct(t, m)
}

func fitStruct(t *StructType, m map[string]any) map[string]any {
	out := map[string]any{}
	for _, fl := range t.Fields {
		v, ok := m[fl.Name]
		if !ok || v == nil {
			continue
		}
		if st, ok := fl.Type.(*StructType); ok {
			if inner, ok := v.(map[string]any); ok {
				out[fl.Name] = fitStruct(st, inner)
			}
			continue
		}
		if fl.Type == TypeBoolean {
			if b, ok := v.(bool); ok {
				out[fl.Name] = b
			}
			continue
		}
		if x, err := coerceValue(fl.Type, v, fl.Name); err == nil {
			out[fl.Name] = x
		}
	}
	return out
}

// statsFromParsed is the stats JSON of a stats_parsed value read from a
// checkpoint ("" when there is none).
func statsFromParsed(t *StructType, v map[string]any) string {
	if v == nil {
		return ""
	}
	m := jsonStruct(t, v)
	if len(m) == 0 {
		return ""
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(m) != nil {
		return ""
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func jsonStruct(t *StructType, v map[string]any) map[string]any {
	out := map[string]any{}
	for _, fl := range t.Fields {
		x, ok := v[fl.Name]
		if !ok || x == nil {
			continue
		}
		if st, ok := fl.Type.(*StructType); ok {
			if inner, ok := x.(map[string]any); ok {
				if j := jsonStruct(st, inner); len(j) > 0 {
					out[fl.Name] = j
				}
			}
			continue
		}
		if j, ok := statJSONValue(fl.Type, x); ok {
			out[fl.Name] = j
		}
	}
	return out
}

// statJSONValue is a typed stats value as the stats JSON writes it.
func statJSONValue(t DataType, x any) (any, bool) {
	switch v := x.(type) {
	case time.Time:
		if t == TypeDate {
			return v.UTC().Format(time.DateOnly), true
		}
		return formatStatTime(v.UnixMicro(), t), true
	case Decimal:
		return json.Number(v.String()), true
	case float32:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 32)), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, false
		}
		return json.Number(string(appendJSONFloat(nil, v))), true
	case int8, int16, int32, int64, string, bool:
		return v, true
	}
	return nil, false
}
