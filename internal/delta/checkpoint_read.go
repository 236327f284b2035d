package delta

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

func mustSchema(s string) *StructType {
	st, err := ParseSchema(s)
	if err != nil {
		panic(err)
	}
	return st
}

func f(name string, t string) string {
	return `{"name":"` + name + `","type":` + t + `,"nullable":true,"metadata":{}}`
}

func st(fields ...string) string {
	out := `{"type":"struct","fields":[`
	for i, x := range fields {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out + "]}"
}

const (
	jsString  = `"string"`
	jsLong    = `"long"`
	jsInt     = `"integer"`
	jsBool    = `"boolean"`
	jsStrMap  = `{"type":"map","keyType":"string","valueType":"string","valueContainsNull":true}`
	jsStrList = `{"type":"array","elementType":"string","containsNull":true}`
)

// checkpointReadSchema is what this package reads from a checkpoint. Columns
// it does not name (stats_parsed, partitionValues_parsed, ...) are skipped.
var checkpointReadSchema = mustSchema(st(
	f("txn", st(f("appId", jsString), f("version", jsLong), f("lastUpdated", jsLong))),
	f("add", st(f("path", jsString), f("partitionValues", jsStrMap), f("size", jsLong),
		f("modificationTime", jsLong), f("dataChange", jsBool), f("stats", jsString), f("tags", jsStrMap),
		f("deletionVector", st(f("storageType", jsString), f("pathOrInlineDv", jsString), f("offset", jsInt),
			f("sizeInBytes", jsInt), f("cardinality", jsLong), f("maxRowIndex", jsLong))),
		f("baseRowId", jsLong), f("defaultRowCommitVersion", jsLong), f("clusteringProvider", jsString))),
	f("remove", st(f("path", jsString), f("deletionTimestamp", jsLong), f("dataChange", jsBool),
		f("extendedFileMetadata", jsBool), f("partitionValues", jsStrMap), f("size", jsLong),
		f("deletionVector", st(f("storageType", jsString), f("pathOrInlineDv", jsString), f("offset", jsInt),
			f("sizeInBytes", jsInt), f("cardinality", jsLong), f("maxRowIndex", jsLong))))),
	f("metaData", st(f("id", jsString), f("name", jsString), f("description", jsString),
		f("format", st(f("provider", jsString), f("options", jsStrMap))), f("schemaString", jsString),
		f("partitionColumns", jsStrList), f("configuration", jsStrMap), f("createdTime", jsLong))),
	f("protocol", st(f("minReaderVersion", jsInt), f("minWriterVersion", jsInt),
		f("readerFeatures", jsStrList), f("writerFeatures", jsStrList))),
	f("domainMetadata", st(f("domain", jsString), f("configuration", jsString), f("removed", jsBool))),
	f("checkpointMetadata", st(f("version", jsLong))),
	f("sidecar", st(f("path", jsString))),
))

// checkpointWriteSchema is what this package writes: the V1 checkpoint
// schema (add stats as JSON only).
var checkpointWriteSchema = mustSchema(st(
	f("txn", st(f("appId", jsString), f("version", jsLong), f("lastUpdated", jsLong))),
	f("add", st(f("path", jsString), f("partitionValues", jsStrMap), f("size", jsLong),
		f("modificationTime", jsLong), f("dataChange", jsBool), f("stats", jsString), f("tags", jsStrMap),
		f("baseRowId", jsLong), f("defaultRowCommitVersion", jsLong), f("clusteringProvider", jsString))),
	f("remove", st(f("path", jsString), f("deletionTimestamp", jsLong), f("dataChange", jsBool),
		f("extendedFileMetadata", jsBool), f("partitionValues", jsStrMap), f("size", jsLong))),
	f("metaData", st(f("id", jsString), f("name", jsString), f("description", jsString),
		f("format", st(f("provider", jsString), f("options", jsStrMap))), f("schemaString", jsString),
		f("partitionColumns", jsStrList), f("configuration", jsStrMap), f("createdTime", jsLong))),
	f("protocol", st(f("minReaderVersion", jsInt), f("minWriterVersion", jsInt),
		f("readerFeatures", jsStrList), f("writerFeatures", jsStrList))),
	f("domainMetadata", st(f("domain", jsString), f("configuration", jsString), f("removed", jsBool))),
))

// readCheckpoint reads the actions of every part of a checkpoint.
func readCheckpoint(ctx context.Context, store Storage, parts []logFile) ([]action, error) {
	var out []action
	for _, p := range parts {
		data, err := store.Read(ctx, p.key)
		if err != nil {
			return nil, err
		}
		rows, err := readParquetRows(data, checkpointReadSchema)
		if err != nil {
			return nil, fmt.Errorf("%w: checkpoint %s: %w", ErrCorruptLog, p.key, err)
		}
		for _, r := range rows {
			a, err := checkpointAction(r)
			if err != nil {
				return nil, fmt.Errorf("%w: checkpoint %s: %w", ErrCorruptLog, p.key, err)
			}
			out = append(out, a)
		}
	}
	return out, nil
}

func mget[T any](m map[string]any, k string) (T, bool) {
	v, ok := m[k].(T)
	return v, ok
}

func strMap(v any) map[string]string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, _ := x.(string)
		out[k] = s
	}
	return out
}

func strList(v any) []string {
	l, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func optInt64(m map[string]any, k string) *int64 {
	if v, ok := m[k].(int64); ok {
		return &v
	}
	return nil
}

func dvJSON(v any) json.RawMessage {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	clean := map[string]any{}
	for k, x := range m {
		if x != nil {
			clean[k] = x
		}
	}
	if len(clean) == 0 {
		return nil
	}
	b, _ := json.Marshal(clean)
	return b
}

func checkpointAction(r map[string]any) (action, error) {
	var a action
	if m, ok := mget[map[string]any](r, "add"); ok {
		add := &AddFile{PartitionValues: strMap(m["partitionValues"]), Tags: strMap(m["tags"])}
		add.Path, _ = mget[string](m, "path")
		add.Size, _ = mget[int64](m, "size")
		add.ModificationTime, _ = mget[int64](m, "modificationTime")
		add.DataChange, _ = mget[bool](m, "dataChange")
		add.Stats, _ = mget[string](m, "stats")
		add.DeletionVector = dvJSON(m["deletionVector"])
		add.BaseRowID = optInt64(m, "baseRowId")
		add.DefaultRowCommitVersion = optInt64(m, "defaultRowCommitVersion")
		add.ClusteringProvider, _ = mget[string](m, "clusteringProvider")
		if add.PartitionValues == nil {
			add.PartitionValues = map[string]string{}
		}
		if add.Path == "" {
			return a, fmt.Errorf("add without path")
		}
		a.Add = add
	}
	if m, ok := mget[map[string]any](r, "remove"); ok {
		rm := &RemoveFile{PartitionValues: strMap(m["partitionValues"])}
		rm.Path, _ = mget[string](m, "path")
		rm.DeletionTimestamp = optInt64(m, "deletionTimestamp")
		rm.DataChange, _ = mget[bool](m, "dataChange")
		if b, ok := mget[bool](m, "extendedFileMetadata"); ok {
			rm.ExtendedFileMetadata = &b
		}
		rm.Size = optInt64(m, "size")
		rm.DeletionVector = dvJSON(m["deletionVector"])
		if rm.Path == "" {
			return a, fmt.Errorf("remove without path")
		}
		a.Remove = rm
	}
	if m, ok := mget[map[string]any](r, "metaData"); ok {
		md := &Metadata{
			PartitionColumns: strList(m["partitionColumns"]),
			Configuration:    strMap(m["configuration"]),
			CreatedTime:      optInt64(m, "createdTime"),
		}
		md.ID, _ = mget[string](m, "id")
		md.Name, _ = mget[string](m, "name")
		md.Description, _ = mget[string](m, "description")
		md.SchemaString, _ = mget[string](m, "schemaString")
		if fm, ok := mget[map[string]any](m, "format"); ok {
			md.Format.Provider, _ = mget[string](fm, "provider")
			md.Format.Options = strMap(fm["options"])
		}
		if md.PartitionColumns == nil {
			md.PartitionColumns = []string{}
		}
		if md.Configuration == nil {
			md.Configuration = map[string]string{}
		}
		var err error
		if md.Schema, err = ParseSchema(md.SchemaString); err != nil {
			return a, err
		}
		a.MetaData = md
	}
	if m, ok := mget[map[string]any](r, "protocol"); ok {
		p := &Protocol{ReaderFeatures: strList(m["readerFeatures"]), WriterFeatures: strList(m["writerFeatures"])}
		rv, _ := mget[int32](m, "minReaderVersion")
		wv, _ := mget[int32](m, "minWriterVersion")
		p.MinReaderVersion, p.MinWriterVersion = int(rv), int(wv)
		a.Protocol = p
	}
	if m, ok := mget[map[string]any](r, "txn"); ok {
		t := &Txn{LastUpdated: optInt64(m, "lastUpdated")}
		t.AppID, _ = mget[string](m, "appId")
		t.Version, _ = mget[int64](m, "version")
		if t.AppID == "" {
			return a, fmt.Errorf("txn without appId")
		}
		a.Txn = t
	}
	if m, ok := mget[map[string]any](r, "domainMetadata"); ok {
		d := &DomainMetadata{}
		d.Domain, _ = mget[string](m, "domain")
		d.Configuration, _ = mget[string](m, "configuration")
		d.Removed, _ = mget[bool](m, "removed")
		a.DomainMetadata = d
	}
	for _, k := range []string{"checkpointMetadata", "sidecar"} {
		if r[k] != nil {
			if a.Other == nil {
				a.Other = map[string]json.RawMessage{}
			}
			a.Other[k] = json.RawMessage(strconv.Quote(k))
		}
	}
	return a, nil
}
