package delta

import (
	"slices"
	"strings"
)

// Reader features this package implements (reader version 3):
// timestampNtz, vacuumProtocolCheck (nothing to do for a reader),
// deletionVectors (rows a DV removes are never returned, see DeletedRows),
// v2Checkpoint (UUID-named and classic V2 checkpoints, sidecars),
// columnMapping (name and id modes: schema_mapping.go) and typeWidening
// (older files read in the wider type). variantType (and its preview name)
// reads variant columns as JSON text.
var supportedReaderFeatures = []string{"timestampNtz", "vacuumProtocolCheck", "deletionVectors", "v2Checkpoint",
	"variantType", "variantType-preview", "columnMapping", "typeWidening", "typeWidening-preview"}

// Writer features this package implements (writer version 7). Appends honour
// them: appendOnly (appends are allowed), changeDataFeed (appends need no
// change files), invariants and checkConstraints (refused when any is
// defined, see checkWritable), domainMetadata (preserved), generatedColumns
// (refused when any is defined), deletionVectors (an append never writes
// one; existing DVs are kept through replay and checkpoints) and
// v2Checkpoint (checkpoints are classic, single-file, V2 spec with a
// checkpointMetadata action; never multi-part).
var supportedWriterFeatures = []string{
	"appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns",
	"timestampNtz", "vacuumProtocolCheck", "domainMetadata", "deletionVectors", "v2Checkpoint",
	// See docs/architecture.md "Writer features" (schema_mapping.go and others).
	"columnMapping", "typeWidening", "typeWidening-preview", "rowTracking", "inCommitTimestamp", "clustering",
	// Supported while no column uses them (checkWritable refuses those).
	"identityColumns", "allowColumnDefaults",
}

// featureHints explain refused features users meet.
var featureHints = map[string]string{
	"catalogManaged":      "catalogManaged (commits go through the table's catalog, which kpipe does not talk to)",
	"variantType":         "variantType (kpipe reads variant columns but does not write them)",
	"variantType-preview": "variantType-preview (kpipe reads variant columns but does not write them)",
	"variantShredding":    "variantShredding (shredded variant columns)",
}

func featureName(f string) string {
	if h, ok := featureHints[f]; ok {
		return h
	}
	return f
}

// CheckReadable returns nil when this package can read the table in s, or
// an error wrapping ErrUnsupportedFeature that names the protocol version
// or each reader feature it does not implement. Open, Snapshot and
// SnapshotAt call it, so every reader (the table library, query, report,
// describe, history) refuses the same tables with the same message.
func CheckReadable(s *Snapshot) error { return checkReadable(s) }

// checkReadable returns an error wrapping ErrUnsupportedFeature naming what
// this package cannot read in the table.
func checkReadable(s *Snapshot) error {
	p := s.protocol
	var bad []string
	switch {
	case p.MinReaderVersion > 3:
		bad = append(bad, "minReaderVersion "+itoa(p.MinReaderVersion)+" (kpipe reads versions 1 to 3)")
	case p.MinReaderVersion == 3:
		for _, f := range p.ReaderFeatures {
			if !slices.Contains(supportedReaderFeatures, f) && f != "columnMapping" {
				bad = append(bad, featureName(f))
			}
		}
	}
	if m := columnMappingMode(s); m != "" && m != "none" && m != "name" && m != "id" {
		bad = append(bad, "columnMapping (mode "+m+")")
	}
	if s.metadata != nil && s.metadata.schemaUnsupported != nil {
		bad = append(bad, "schema: "+strings.TrimPrefix(s.metadata.schemaUnsupported.Error(), ErrUnsupportedFeature.Error()+": "))
	}
	if len(bad) > 0 {
		return unsupported("reading table with", dedupe(bad)...)
	}
	return nil
}

// checkWritable returns an error wrapping ErrUnsupportedFeature naming what
// this package cannot honour when appending to the table.
func checkWritable(s *Snapshot) error {
	if err := checkReadable(s); err != nil {
		return err
	}
	p := s.protocol
	var bad []string
	switch {
	case p.MinWriterVersion > 7:
		bad = append(bad, "minWriterVersion "+itoa(p.MinWriterVersion))
	case p.MinWriterVersion == 7:
		for _, f := range p.WriterFeatures {
			if !slices.Contains(supportedWriterFeatures, f) {
				bad = append(bad, featureName(f))
			}
		}
	}
	for _, k := range []string{"delta.enableIcebergCompatV1", "delta.enableIcebergCompatV2"} {
		if s.configBool(k) {
			bad = append(bad, k)
		}
	}
	for k := range s.metadata.Configuration {
		if strings.HasPrefix(k, "delta.constraints.") {
			bad = append(bad, "CHECK constraint "+strings.TrimPrefix(k, "delta.constraints."))
		}
	}
	walkFields(s.metadata.Schema, "", func(path string, f *StructField) {
		if containsVariant(f.Type) {
			bad = append(bad, "variant column "+path)
		}
		for k := range f.Metadata {
			switch {
			case k == "delta.invariants":
				bad = append(bad, "invariant on "+path)
			case k == "delta.generationExpression":
				bad = append(bad, "generated column "+path)
			case k == "CURRENT_DEFAULT":
				bad = append(bad, "default value of "+path)
			}
		}
	})
	if len(bad) > 0 {
		slices.Sort(bad)
		return unsupported("writing table with", dedupe(bad)...)
	}
	return nil
}

func columnMappingMode(s *Snapshot) string {
	v, _ := s.config("delta.columnMapping.mode")
	return strings.ToLower(strings.TrimSpace(v))
}

func walkFields(t *StructType, prefix string, fn func(path string, f *StructField)) {
	for _, f := range t.Fields {
		p := joinPath(prefix, f.Name)
		fn(p, f)
		walkType(f.Type, p, fn)
	}
}

func walkType(t DataType, p string, fn func(string, *StructField)) {
	switch t := t.(type) {
	case *StructType:
		walkFields(t, p, fn)
	case *ArrayType:
		walkType(t.ElementType, p+"[]", fn)
	case *MapType:
		walkType(t.KeyType, p+".key", fn)
		walkType(t.ValueType, p+".value", fn)
	}
}

func dedupe(s []string) []string {
	out := s[:0]
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// CheckAppend reports whether Append can write to the table in this
// snapshot: nil, or the error Append would return before writing anything,
// wrapping ErrUnsupportedFeature (naming the feature) or, when withTxns is
// set, ErrTxnRetention. A worker calls it once when it opens the table, to
// stop with that message before it consumes anything.
func (s *Snapshot) CheckAppend(withTxns bool) error {
	if err := checkWritable(s); err != nil {
		return err
	}
	if withTxns {
		return checkTxns(s, []Txn{{AppID: "\x00check"}}, nil)
	}
	return nil
}

// containsVariant reports whether t is or holds (in an array or map, not
// a struct: walkFields visits struct fields itself) a variant.
func containsVariant(t DataType) bool {
	switch t := t.(type) {
	case PrimitiveType:
		return t == TypeVariant
	case *ArrayType:
		return containsVariant(t.ElementType)
	case *MapType:
		return containsVariant(t.KeyType) || containsVariant(t.ValueType)
	}
	return false
}
