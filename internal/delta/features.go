package delta

import (
	"slices"
	"strings"
)

// Reader features this package implements (reader version 3).
var supportedReaderFeatures = []string{"timestampNtz", "vacuumProtocolCheck", "columnMapping", "typeWidening", "typeWidening-preview"}

// Writer features this package implements (writer version 7). Appends honour
// them: appendOnly (appends are allowed), changeDataFeed (appends need no
// change files), invariants and checkConstraints (refused when any is
// defined, see checkWritable), domainMetadata (preserved), generatedColumns
// (refused when any is defined).
var supportedWriterFeatures = []string{
	"appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns",
	"timestampNtz", "vacuumProtocolCheck", "domainMetadata",
	// See docs/architecture.md "Writer features" (schema_mapping.go and others).
	"columnMapping", "typeWidening", "typeWidening-preview", "rowTracking", "inCommitTimestamp", "clustering",
	// Supported while no column uses them (checkWritable refuses those).
	"identityColumns", "allowColumnDefaults",
}

// checkReadable returns an error wrapping ErrUnsupportedFeature naming what
// this package cannot read in the table.
func checkReadable(s *Snapshot) error {
	p := s.protocol
	var bad []string
	switch {
	case p.MinReaderVersion > 3:
		bad = append(bad, "minReaderVersion "+itoa(p.MinReaderVersion))
	case p.MinReaderVersion == 3:
		for _, f := range p.ReaderFeatures {
			if !slices.Contains(supportedReaderFeatures, f) && f != "columnMapping" {
				bad = append(bad, f)
			}
		}
	}
	if m := columnMappingMode(s); m != "" && m != "none" && m != "name" && m != "id" {
		bad = append(bad, "columnMapping (mode "+m+")")
	}
	for _, f := range s.files {
		if len(f.DeletionVector) > 0 {
			bad = append(bad, "deletionVectors (file with a deletion vector)")
			break
		}
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
				bad = append(bad, f)
			}
		}
	}
	for _, k := range []string{"delta.enableDeletionVectors",
		"delta.enableIcebergCompatV1", "delta.enableIcebergCompatV2"} {
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
