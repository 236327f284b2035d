package delta

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
	jsDV      = `{"type":"struct","fields":[` + `{"name":"storageType","type":"string","nullable":true,"metadata":{}},` +
		`{"name":"pathOrInlineDv","type":"string","nullable":true,"metadata":{}},{"name":"offset","type":"integer","nullable":true,"metadata":{}},` +
		`{"name":"sizeInBytes","type":"integer","nullable":true,"metadata":{}},{"name":"cardinality","type":"long","nullable":true,"metadata":{}},` +
		`{"name":"maxRowIndex","type":"long","nullable":true,"metadata":{}}]}`
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
	f("checkpointMetadata", st(f("version", jsLong), f("tags", jsStrMap))),
	f("sidecar", st(f("path", jsString), f("sizeInBytes", jsLong), f("modificationTime", jsLong), f("tags", jsStrMap))),
))

// checkpointWriteSchema is the schema of the checkpoints this package
// writes when stats are JSON only: the V1 checkpoint schema.
var checkpointWriteSchema = mustSchema(st(
	f("txn", st(f("appId", jsString), f("version", jsLong), f("lastUpdated", jsLong))),
	f("add", st(f("path", jsString), f("partitionValues", jsStrMap), f("size", jsLong),
		f("modificationTime", jsLong), f("dataChange", jsBool), f("stats", jsString), f("tags", jsStrMap),
		f("deletionVector", jsDV), f("baseRowId", jsLong), f("defaultRowCommitVersion", jsLong),
		f("clusteringProvider", jsString))),
	f("remove", st(f("path", jsString), f("deletionTimestamp", jsLong), f("dataChange", jsBool),
		f("extendedFileMetadata", jsBool), f("partitionValues", jsStrMap), f("size", jsLong),
		f("deletionVector", jsDV))),
	f("metaData", st(f("id", jsString), f("name", jsString), f("description", jsString),
		f("format", st(f("provider", jsString), f("options", jsStrMap))), f("schemaString", jsString),
		f("partitionColumns", jsStrList), f("configuration", jsStrMap), f("createdTime", jsLong))),
	f("protocol", st(f("minReaderVersion", jsInt), f("minWriterVersion", jsInt),
		f("readerFeatures", jsStrList), f("writerFeatures", jsStrList))),
	f("domainMetadata", st(f("domain", jsString), f("configuration", jsString), f("removed", jsBool))),
))

// parquetSource is a Parquet file of a checkpoint whose rows became
// actions[first : first+n], in order.
type parquetSource struct {
	key      string
	data     []byte
	first, n int
}

// readCheckpoint reads the actions of every part of a checkpoint: classic
// or multi-part Parquet, or a UUID-named V2 checkpoint in JSON or Parquet,
// with the add and remove actions of the sidecar files a V2 spec
// checkpoint names. Adds without a stats JSON take their stats from
// add.stats_parsed (and partition values from partitionValues_parsed) when
// the Parquet file has them.
func readCheckpoint(ctx context.Context, store Storage, parts []logFile) ([]action, error) {
	var out []action
	var srcs []parquetSource
	for _, p := range parts {
		data, err := store.Read(ctx, p.key)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(p.key, ".json") {
			acts, err := parseLogEntry(data)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %s: %w", p.key, err)
			}
			out = append(out, acts...)
			continue
		}
		first := len(out)
		if out, err = appendCheckpointRows(out, data, p.key, false); err != nil {
			return nil, err
		}
		srcs = append(srcs, parquetSource{key: p.key, data: data, first: first, n: len(out) - first})
	}
	var sidecars []*Sidecar
	metas := 0
	for _, a := range out {
		if a.Sidecar != nil {
			sidecars = append(sidecars, a.Sidecar)
		}
		if a.CheckpointMetadata != nil {
			metas++
		}
	}
	if len(parts) == 1 && parts[0].uuid && metas != 1 {
		return nil, fmt.Errorf("%w: UUID-named checkpoint %s has %d checkpointMetadata actions, want 1", ErrCorruptLog, parts[0].key, metas)
	}
	for _, sc := range sidecars {
		key, err := sidecarKey(store, sc.Path)
		if err != nil {
			return nil, err
		}
		data, err := store.Read(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%w: sidecar %s of the checkpoint: %w", ErrCorruptLog, key, err)
		}
		first := len(out)
		if out, err = appendCheckpointRows(out, data, key, true); err != nil {
			return nil, err
		}
		srcs = append(srcs, parquetSource{key: key, data: data, first: first, n: len(out) - first})
	}
	fillParsedStats(out, srcs)
	return out, nil
}

// appendCheckpointRows appends the actions of a checkpoint Parquet file's
// rows, one per row (rows of no action kind become empty actions, so row i
// is action first+i); a sidecar contributes only add and remove actions.
func appendCheckpointRows(out []action, data []byte, key string, sidecar bool) ([]action, error) {
	rows, err := readParquetRows(data, checkpointReadSchema)
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint %s: %w", ErrCorruptLog, key, err)
	}
	for _, r := range rows {
		a, err := checkpointAction(r)
		if err != nil {
			return nil, fmt.Errorf("%w: checkpoint %s: %w", ErrCorruptLog, key, err)
		}
		if sidecar {
			a = action{Add: a.Add, Remove: a.Remove}
		}
		out = append(out, a)
	}
	return out, nil
}

// sidecarKey resolves a sidecar action's path: a file name (what writers
// are encouraged to store) or path relative to _delta_log/_sidecars, or an
// absolute path inside the table.
func sidecarKey(store Storage, p string) (string, error) {
	k := StorageKey(p)
	if strings.Contains(k, "://") || strings.HasPrefix(k, "/") {
		return dataFileKey(store, k)
	}
	return logDir + "_sidecars/" + k, nil
}

// fillParsedStats gives adds without a stats JSON the stats of their
// add.stats_parsed column, and adds without partition values those of
// add.partitionValues_parsed, reading the Parquet sources again with the
// table's stats types. Stats are optional: a column that does not read is
// left out.
func fillParsedStats(acts []action, srcs []parquetSource) {
	var md *Metadata
	var proto *Protocol
	for _, a := range acts {
		switch {
		case a.MetaData != nil:
			md = a.MetaData
		case a.Protocol != nil:
			proto = a.Protocol
		}
	}
	if md == nil || md.schemaUnsupported != nil {
		return
	}
	need := false
	for _, a := range acts {
		if a.Add != nil && (a.Add.Stats == "" || len(md.PartitionColumns) > 0 && len(a.Add.PartitionValues) == 0) {
			need = true
			break
		}
	}
	if !need {
		return
	}
	s := &Snapshot{metadata: md, protocol: proto}
	if proto == nil {
		s.protocol = &Protocol{}
	}
	statsT, partT := statsParsedType(s), partitionParsedType(s)
	addFields := []*StructField{{Name: "stats_parsed", Type: statsT, Nullable: true}}
	if partT != nil {
		addFields = append(addFields, &StructField{Name: "partitionValues_parsed", Type: partT, Nullable: true})
	}
	schema := &StructType{Fields: []*StructField{{Name: "add", Type: &StructType{Fields: addFields}, Nullable: true}}}
	for _, src := range srcs {
		rows, err := readParquetRows(src.data, schema)
		if err != nil || len(rows) != src.n {
			continue
		}
		for i, r := range rows {
			add := acts[src.first+i].Add
			m, _ := r["add"].(map[string]any)
			if add == nil || m == nil {
				continue
			}
			if add.Stats == "" {
				if ps, ok := m["stats_parsed"].(map[string]any); ok {
					add.Stats = statsFromParsed(statsT, ps)
				}
			}
			if partT != nil && len(add.PartitionValues) == 0 {
				if pv, ok := m["partitionValues_parsed"].(map[string]any); ok {
					add.PartitionValues = partitionsFromParsed(partT, pv)
				}
			}
		}
	}
}

// partitionsFromParsed serializes a partitionValues_parsed value.
func partitionsFromParsed(t *StructType, pv map[string]any) map[string]string {
	out := make(map[string]string, len(t.Fields))
	for _, fl := range t.Fields {
		out[fl.Name] = ""
		if v := pv[fl.Name]; v != nil {
			if s, err := serializePartitionValue(fl.Type, v); err == nil {
				out[fl.Name] = s
			}
		}
	}
	return out
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
	return canonicalDV(b)
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
		if err := md.parseSchema(); err != nil {
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
	if m, ok := mget[map[string]any](r, "checkpointMetadata"); ok {
		cm := &CheckpointMetadata{Tags: strMap(m["tags"])}
		cm.Version, _ = mget[int64](m, "version")
		a.CheckpointMetadata = cm
	}
	if m, ok := mget[map[string]any](r, "sidecar"); ok {
		sc := &Sidecar{Tags: strMap(m["tags"])}
		sc.Path, _ = mget[string](m, "path")
		sc.SizeInBytes, _ = mget[int64](m, "sizeInBytes")
		sc.ModificationTime, _ = mget[int64](m, "modificationTime")
		if sc.Path == "" {
			return a, fmt.Errorf("sidecar without path")
		}
		a.Sidecar = sc
	}
	return a, nil
}
