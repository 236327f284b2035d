package delta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Protocol is the protocol action: the reader and writer versions and, for
// reader version 3 and writer version 7, the table features.
type Protocol struct {
	MinReaderVersion int      `json:"minReaderVersion"`
	MinWriterVersion int      `json:"minWriterVersion"`
	ReaderFeatures   []string `json:"readerFeatures,omitempty"`
	WriterFeatures   []string `json:"writerFeatures,omitempty"`
}

// Format is the data file format of a table (always parquet).
type Format struct {
	Provider string            `json:"provider"`
	Options  map[string]string `json:"options"`
}

// Metadata is the metaData action. Schema is parsed from SchemaString.
type Metadata struct {
	ID               string            `json:"id"`
	Name             string            `json:"name,omitempty"`
	Description      string            `json:"description,omitempty"`
	Format           Format            `json:"format"`
	SchemaString     string            `json:"schemaString"`
	PartitionColumns []string          `json:"partitionColumns"`
	Configuration    map[string]string `json:"configuration"`
	CreatedTime      *int64            `json:"createdTime,omitempty"`

	Schema *StructType `json:"-"`
	// schemaUnsupported is why SchemaString uses a type this package does
	// not implement (Schema is then empty); checkReadable refuses the
	// table naming it, rather than calling the log corrupt.
	schemaUnsupported error
}

// parseSchema sets Schema from SchemaString.
func (m *Metadata) parseSchema() error {
	st, err := ParseSchema(m.SchemaString)
	switch {
	case err == nil:
		m.Schema = st
	case errors.Is(err, ErrUnsupportedFeature):
		m.Schema, m.schemaUnsupported = &StructType{}, err
	default:
		return err
	}
	return nil
}

// AddFile is the add action: a data file in the table.
type AddFile struct {
	// Path is the file's path as written in the log: relative to the table
	// root and URL-encoded (see StorageKey).
	Path string `json:"path"`
	// PartitionValues maps each partition column to its serialized value;
	// the empty string is a null value.
	PartitionValues  map[string]string `json:"partitionValues"`
	Size             int64             `json:"size"`
	ModificationTime int64             `json:"modificationTime"`
	DataChange       bool              `json:"dataChange"`
	// Stats is the statistics JSON (numRecords, minValues, maxValues,
	// nullCount), or empty.
	Stats                   string            `json:"stats,omitempty"`
	Tags                    map[string]string `json:"tags,omitempty"`
	DeletionVector          json.RawMessage   `json:"deletionVector,omitempty"`
	BaseRowID               *int64            `json:"baseRowId,omitempty"`
	DefaultRowCommitVersion *int64            `json:"defaultRowCommitVersion,omitempty"`
	ClusteringProvider      string            `json:"clusteringProvider,omitempty"`
}

// NumRecords returns the numRecords statistic, if the file has stats.
func (a *AddFile) NumRecords() (int64, bool) {
	if a.Stats == "" {
		return 0, false
	}
	var s struct {
		NumRecords *int64 `json:"numRecords"`
	}
	if json.Unmarshal([]byte(a.Stats), &s) != nil || s.NumRecords == nil {
		return 0, false
	}
	return *s.NumRecords, true
}

// RemoveFile is the remove action: a tombstone for a file no longer in the
// table.
type RemoveFile struct {
	Path                 string            `json:"path"`
	DeletionTimestamp    *int64            `json:"deletionTimestamp,omitempty"`
	DataChange           bool              `json:"dataChange"`
	ExtendedFileMetadata *bool             `json:"extendedFileMetadata,omitempty"`
	PartitionValues      map[string]string `json:"partitionValues,omitempty"`
	Size                 *int64            `json:"size,omitempty"`
	Stats                string            `json:"stats,omitempty"`
	Tags                 map[string]string `json:"tags,omitempty"`
	DeletionVector       json.RawMessage   `json:"deletionVector,omitempty"`
}

// Txn is a transaction identifier: the progress of application AppID.
type Txn struct {
	AppID       string `json:"appId"`
	Version     int64  `json:"version"`
	LastUpdated *int64 `json:"lastUpdated,omitempty"`
}

// DomainMetadata is the domainMetadata action.
type DomainMetadata struct {
	Domain        string `json:"domain"`
	Configuration string `json:"configuration"`
	Removed       bool   `json:"removed"`
}

// action is one line of a log entry; exactly one field is normally set.
type action struct {
	Add            *AddFile
	Remove         *RemoveFile
	MetaData       *Metadata
	Protocol       *Protocol
	Txn            *Txn
	CommitInfo     map[string]any
	CDC            json.RawMessage
	DomainMetadata *DomainMetadata
	// Sidecar and CheckpointMetadata appear only in V2 spec checkpoints
	// (commits' are ignored: they take no part in log replay).
	Sidecar            *Sidecar
	CheckpointMetadata *CheckpointMetadata
	// Other holds action kinds this package does not interpret (future
	// ones); replay ignores them, as PROTOCOL.md says.
	Other map[string]json.RawMessage
}

// Sidecar is the sidecar action of a V2 spec checkpoint: a Parquet file in
// _delta_log/_sidecars holding some of the checkpoint's add and remove
// actions.
type Sidecar struct {
	Path             string            `json:"path"`
	SizeInBytes      int64             `json:"sizeInBytes"`
	ModificationTime int64             `json:"modificationTime"`
	Tags             map[string]string `json:"tags,omitempty"`
}

// CheckpointMetadata is the checkpointMetadata action every V2 spec
// checkpoint holds once.
type CheckpointMetadata struct {
	Version int64             `json:"version"`
	Tags    map[string]string `json:"tags,omitempty"`
}

// parseLogEntry parses a newline-delimited JSON log entry (a commit file).
func parseLogEntry(data []byte) ([]action, error) {
	var out []action
	line := 0
	for len(data) > 0 {
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		line++
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		a, err := parseAction(l)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrCorruptLog, line, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func parseAction(l []byte) (action, error) {
	var a action
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(l, &raw); err != nil {
		return a, err
	}
	if raw == nil {
		return a, fmt.Errorf("action is not an object")
	}
	for k, v := range raw {
		if isJSONNull(v) {
			continue
		}
		var err error
		switch k {
		case "add":
			a.Add = new(AddFile)
			if err = strictObject(v, a.Add); err == nil && a.Add.Path == "" {
				err = fmt.Errorf("add without path")
			}
			a.Add.DeletionVector = canonicalDV(a.Add.DeletionVector)
		case "remove":
			a.Remove = new(RemoveFile)
			if err = strictObject(v, a.Remove); err == nil && a.Remove.Path == "" {
				err = fmt.Errorf("remove without path")
			}
			a.Remove.DeletionVector = canonicalDV(a.Remove.DeletionVector)
		case "metaData":
			a.MetaData = new(Metadata)
			if err = strictObject(v, a.MetaData); err == nil {
				err = a.MetaData.parseSchema()
			}
		case "protocol":
			a.Protocol = new(Protocol)
			err = strictObject(v, a.Protocol)
		case "txn":
			a.Txn = new(Txn)
			if err = strictObject(v, a.Txn); err == nil && a.Txn.AppID == "" {
				err = fmt.Errorf("txn without appId")
			}
		case "commitInfo":
			dec := json.NewDecoder(bytes.NewReader(v))
			dec.UseNumber()
			err = dec.Decode(&a.CommitInfo)
		case "cdc":
			a.CDC = v
		case "domainMetadata":
			a.DomainMetadata = new(DomainMetadata)
			err = strictObject(v, a.DomainMetadata)
		case "sidecar":
			a.Sidecar = new(Sidecar)
			if err = strictObject(v, a.Sidecar); err == nil && a.Sidecar.Path == "" {
				err = fmt.Errorf("sidecar without path")
			}
		case "checkpointMetadata":
			a.CheckpointMetadata = new(CheckpointMetadata)
			err = strictObject(v, a.CheckpointMetadata)
		default:
			if a.Other == nil {
				a.Other = map[string]json.RawMessage{}
			}
			a.Other[k] = v
		}
		if err != nil {
			return a, fmt.Errorf("%s: %w", k, err)
		}
	}
	return a, nil
}

func isJSONNull(v json.RawMessage) bool {
	return v != nil && string(bytes.TrimSpace(v)) == "null"
}

// strictObject decodes a JSON object, rejecting non-objects (a string where
// an action object belongs means a corrupt entry, not an empty action).
func strictObject(v json.RawMessage, dst any) error {
	t := bytes.TrimSpace(v)
	if len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("not an object")
	}
	return json.Unmarshal(t, dst)
}

// --- encoding ---

// nullableMap encodes empty strings as JSON null, as partition values are.
type nullableMap map[string]string

func (m nullableMap) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, k)
		b.WriteByte(':')
		if v := m[k]; v == "" {
			b.WriteString("null")
		} else {
			writeJSONString(&b, v)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshalAction(a action) ([]byte, error) {
	switch {
	case a.Add != nil:
		type addAlias AddFile
		aa := struct {
			*addAlias
			PartitionValues nullableMap `json:"partitionValues"`
		}{(*addAlias)(a.Add), nullableMap(a.Add.PartitionValues)}
		if aa.PartitionValues == nil {
			aa.PartitionValues = nullableMap{}
		}
		return json.Marshal(map[string]any{"add": aa})
	case a.Remove != nil:
		return json.Marshal(map[string]any{"remove": a.Remove})
	case a.MetaData != nil:
		md := *a.MetaData
		if md.PartitionColumns == nil {
			md.PartitionColumns = []string{}
		}
		if md.Configuration == nil {
			md.Configuration = map[string]string{}
		}
		if md.Format.Options == nil {
			md.Format.Options = map[string]string{}
		}
		return json.Marshal(map[string]any{"metaData": md})
	case a.Protocol != nil:
		return json.Marshal(map[string]any{"protocol": a.Protocol})
	case a.Txn != nil:
		return json.Marshal(map[string]any{"txn": a.Txn})
	case a.CommitInfo != nil:
		return json.Marshal(map[string]any{"commitInfo": a.CommitInfo})
	case a.DomainMetadata != nil:
		return json.Marshal(map[string]any{"domainMetadata": a.DomainMetadata})
	case a.CDC != nil:
		return json.Marshal(map[string]any{"cdc": a.CDC})
	}
	return nil, fmt.Errorf("delta: empty action")
}

// encodeLogEntry encodes actions as a newline-delimited log entry.
func encodeLogEntry(actions []action) ([]byte, error) {
	var b bytes.Buffer
	for _, a := range actions {
		l, err := marshalAction(a)
		if err != nil {
			return nil, err
		}
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// --- file names ---

const logDir = "_delta_log/"

func commitKey(v int64) string { return fmt.Sprintf("%s%020d.json", logDir, v) }

func checkpointKey(v int64) string { return fmt.Sprintf("%s%020d.checkpoint.parquet", logDir, v) }

const lastCheckpointKey = logDir + "_last_checkpoint"

// logFile is a parsed _delta_log file name.
type logFile struct {
	key     string
	version int64
	kind    int // logCommit, logCheckpoint
	part    int // 1-based part of a multi-part checkpoint, 0 for classic
	parts   int
	// uuid marks a UUID-named (V2 spec) checkpoint, JSON or Parquet.
	uuid    bool
	size    int64
	modTime time.Time
}

const (
	logCommit = iota + 1
	logCheckpoint
)

// parseLogFileName recognises NNN.json, NNN.checkpoint.parquet,
// NNN.checkpoint.PPP.QQQ.parquet and the UUID-named
// NNN.checkpoint.UUID.json / .parquet; other files (crc, compactions) are
// not used by this package.
func parseLogFileName(key string) (logFile, bool) {
	name, ok := strings.CutPrefix(key, logDir)
	if !ok || len(name) < 21 || strings.Contains(name, "/") {
		return logFile{}, false
	}
	v, err := strconv.ParseInt(name[:20], 10, 64)
	if err != nil || v < 0 || name[20] != '.' {
		return logFile{}, false
	}
	rest := name[21:]
	switch {
	case rest == "json":
		return logFile{key: key, version: v, kind: logCommit}, true
	case rest == "checkpoint.parquet":
		return logFile{key: key, version: v, kind: logCheckpoint}, true
	case isUUIDCheckpoint(rest):
		return logFile{key: key, version: v, kind: logCheckpoint, uuid: true}, true
	case strings.HasPrefix(rest, "checkpoint.") && strings.HasSuffix(rest, ".parquet"):
		mid := strings.TrimSuffix(strings.TrimPrefix(rest, "checkpoint."), ".parquet")
		ps, qs, ok := strings.Cut(mid, ".")
		if !ok || len(ps) != 10 || len(qs) != 10 {
			return logFile{}, false
		}
		p, err1 := strconv.Atoi(ps)
		q, err2 := strconv.Atoi(qs)
		if err1 != nil || err2 != nil || p < 1 || p > q {
			return logFile{}, false
		}
		return logFile{key: key, version: v, kind: logCheckpoint, part: p, parts: q}, true
	}
	return logFile{}, false
}

// isUUIDCheckpoint reports whether rest (a log file name after
// "NNN.") is "checkpoint.<uuid>.json" or "checkpoint.<uuid>.parquet".
func isUUIDCheckpoint(rest string) bool {
	mid, ok := strings.CutPrefix(rest, "checkpoint.")
	if !ok {
		return false
	}
	u, ok := strings.CutSuffix(mid, ".json")
	if !ok {
		if u, ok = strings.CutSuffix(mid, ".parquet"); !ok {
			return false
		}
	}
	if len(u) != 36 {
		return false
	}
	for i, c := range u {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// StorageKey turns an add/remove path from the log into a storage key
// relative to the table root: the path is URL-decoded; absolute paths are
// returned decoded and still absolute (callers treat them as outside the
// table).
func StorageKey(p string) string {
	u, err := url.Parse(p)
	if err != nil {
		if d, err := url.PathUnescape(p); err == nil {
			return d
		}
		return p
	}
	switch u.Scheme {
	case "":
		return u.Path
	case "file":
		return u.Path
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// CommitInfo is one entry of a table's history.
type CommitInfo struct {
	Version    int64
	Timestamp  time.Time
	Operation  string
	EngineInfo string
	// Info is the whole commitInfo action as decoded (numbers as
	// json.Number); nil when the commit has none.
	Info map[string]any
}

func commitInfoOf(version int64, ci map[string]any, fallback time.Time) CommitInfo {
	c := CommitInfo{Version: version, Timestamp: fallback, Info: ci}
	if ci == nil {
		return c
	}
	if s, ok := ci["operation"].(string); ok {
		c.Operation = s
	}
	if s, ok := ci["engineInfo"].(string); ok {
		c.EngineInfo = s
	}
	for _, k := range []string{"inCommitTimestamp", "timestamp"} {
		if n, ok := ci[k].(json.Number); ok {
			if ms, err := n.Int64(); err == nil {
				c.Timestamp = time.UnixMilli(ms).UTC()
				break
			}
		}
	}
	return c
}

// timeOfFile is the fallback commit time of a log file: its modification
// time.
func timeOfFile(f logFile) time.Time { return f.modTime.UTC() }
