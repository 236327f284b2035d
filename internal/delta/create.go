package delta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Table properties kpipe keeps in the metaData configuration to place
// columns whose struct fields are inferred from data (they join the Delta
// schema on the first write that has a value for them).
const (
	propColumnOrder     = "kpipe.columnOrder"
	propInferredColumns = "kpipe.inferredColumns"
)

// TableDef describes a table to create.
type TableDef struct {
	Name        string
	Description string
	// Schema lists every declared column in order. A column named in
	// Inferred is a struct whose fields come from data: its type here is an
	// empty *StructType and it is left out of the Delta schema until a write
	// has a non-null value for it.
	Schema           *StructType
	Inferred         []string
	PartitionColumns []string
	Properties       map[string]string
}

// Validate checks the definition.
func (d TableDef) Validate() error {
	var errs []error
	if d.Schema == nil || len(d.Schema.Fields) == 0 {
		errs = append(errs, fmt.Errorf("table %q: no columns", d.Name))
		return errors.Join(errs...)
	}
	seen := map[string]bool{}
	for _, f := range d.Schema.Fields {
		l := strings.ToLower(f.Name)
		if seen[l] {
			errs = append(errs, fmt.Errorf("column %q: declared twice", f.Name))
		}
		seen[l] = true
		if strings.ContainsAny(f.Name, ",") {
			errs = append(errs, fmt.Errorf("column %q: name contains a comma", f.Name))
		}
	}
	for _, n := range d.Inferred {
		f := d.Schema.Field(n)
		if f == nil {
			errs = append(errs, fmt.Errorf("inferred column %q: not declared", n))
			continue
		}
		if st, ok := f.Type.(*StructType); !ok || len(st.Fields) > 0 || !f.Nullable {
			errs = append(errs, fmt.Errorf("inferred column %q: must be a nullable struct without fields", n))
		}
	}
	for _, pc := range d.PartitionColumns {
		f := d.Schema.Field(pc)
		if f == nil {
			errs = append(errs, fmt.Errorf("partition column %q: not declared", pc))
			continue
		}
		if _, ok := f.Type.(PrimitiveType); !ok {
			errs = append(errs, fmt.Errorf("partition column %q: type %s cannot partition", pc, f.Type))
		}
	}
	for k, v := range d.Properties {
		switch {
		case k == propColumnMappingMode && !slices.Contains([]string{"none", "name", "id"}, strings.ToLower(v)):
			errs = append(errs, fmt.Errorf("property %s=%s: the mode is none, name or id", k, v))
		case k == propMaxColumnID:
			errs = append(errs, fmt.Errorf("property %s: set by the table itself (column mapping), not by users", k))
		case k == "delta.checkpointPolicy" && v != "classic" && v != "v2":
			errs = append(errs, fmt.Errorf("property %s=%s: the policy is classic or v2", k, v))
		case strings.HasPrefix(k, "delta.constraints."):
			errs = append(errs, fmt.Errorf("property %s=%s: %w", k, v, ErrUnsupportedFeature))
		case strings.HasPrefix(k, "kpipe."):
			errs = append(errs, fmt.Errorf("property %s: the kpipe. prefix is reserved", k))
		}
	}
	walkFields(d.Schema, "", func(path string, f *StructField) {
		if st, ok := f.Type.(*StructType); ok && len(st.Fields) == 0 && !slices.Contains(d.Inferred, path) {
			errs = append(errs, fmt.Errorf("column %q: struct without fields", path))
		}
	})
	return errors.Join(errs...)
}

// CreateCommit returns the protocol, metadata and log entry (version 0) that
// Create writes for def.
func CreateCommit(def TableDef, now time.Time) (Protocol, Metadata, []byte, error) {
	if err := def.Validate(); err != nil {
		return Protocol{}, Metadata{}, nil, err
	}
	schema := &StructType{}
	for _, f := range def.Schema.Fields {
		if !slices.Contains(def.Inferred, f.Name) {
			schema.Fields = append(schema.Fields, f)
		}
	}
	conf := map[string]string{}
	for k, v := range def.Properties {
		conf[k] = v
	}
	if len(def.Inferred) > 0 {
		names := make([]string, len(def.Schema.Fields))
		for i, f := range def.Schema.Fields {
			names[i] = f.Name
		}
		conf[propColumnOrder] = strings.Join(names, ",")
		conf[propInferredColumns] = strings.Join(def.Inferred, ",")
	}
	ms := now.UnixMilli()
	md := Metadata{
		ID:               newUUID(),
		Name:             def.Name,
		Description:      def.Description,
		Format:           Format{Provider: "parquet", Options: map[string]string{}},
		Schema:           schema,
		SchemaString:     schema.SchemaString(),
		PartitionColumns: append([]string{}, def.PartitionColumns...),
		Configuration:    conf,
		CreatedTime:      &ms,
	}
	proto, schema, err := createProtocol(conf, schema)
	if err != nil {
		return Protocol{}, Metadata{}, nil, err
	}
	md.Schema, md.SchemaString = schema, schema.SchemaString()
	acts := []action{
		{CommitInfo: map[string]any{
			"timestamp": ms,
			"operation": "CREATE TABLE",
			"operationParameters": map[string]any{
				"isManaged":   "false",
				"description": def.Description,
				"partitionBy": jsonString(nonNil(def.PartitionColumns)),
				"properties":  jsonString(def.Properties),
			},
			"isolationLevel": "Serializable",
			"isBlindAppend":  true,
			"engineInfo":     EngineInfo(),
			"txnId":          newUUID(),
		}},
		{Protocol: &proto},
		{MetaData: &md},
	}
	if ictOn(&proto, &md) {
		acts[0].CommitInfo["inCommitTimestamp"] = ms
	}
	entry, err := encodeLogEntry(acts)
	if err != nil {
		return Protocol{}, Metadata{}, nil, err
	}
	return proto, md, entry, nil
}

// Create creates a table at store from def and opens it. It fails with
// ErrTableExists when the location already has a Delta log.
func Create(ctx context.Context, store Storage, def TableDef, opts ...Option) (*Table, error) {
	existing, err := store.List(ctx, logDir, "")
	if err != nil {
		return nil, err
	}
	for _, fi := range existing {
		if _, ok := parseLogFileName(fi.Key); ok {
			return nil, fmt.Errorf("%w: %s", ErrTableExists, store.Location())
		}
	}
	_, _, entry, err := CreateCommit(def, time.Now())
	if err != nil {
		return nil, err
	}
	if err := store.PutIfAbsent(ctx, commitKey(0), entry); err != nil {
		if errors.Is(err, ErrExist) {
			return nil, fmt.Errorf("%w: %s", ErrTableExists, store.Location())
		}
		return nil, err
	}
	return Open(ctx, store, opts...)
}

// Drop deletes every object of the table at store: data files and log.
func Drop(ctx context.Context, store Storage) error {
	all, err := store.List(ctx, "", "")
	if err != nil {
		return err
	}
	// Log first, so a half-dropped table is not a table.
	slices.SortStableFunc(all, func(a, b FileInfo) int {
		la, lb := isLogKey(a.Key), isLogKey(b.Key)
		switch {
		case la && !lb:
			return -1
		case lb && !la:
			return 1
		}
		return 0
	})
	for _, fi := range all {
		if err := store.Delete(ctx, fi.Key); err != nil {
			return err
		}
	}
	return nil
}
