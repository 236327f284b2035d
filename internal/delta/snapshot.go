package delta

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Snapshot is the state of a table at one version. It is immutable and safe
// for concurrent use.
type Snapshot struct {
	version  int64
	protocol *Protocol
	metadata *Metadata
	files    map[string]*AddFile // by StorageKey(path)
	// tombstones are keyed by tombstoneKey(StorageKey(path), DV uniqueId).
	tombstones map[string]*RemoveFile
	txns       map[string]Txn
	domains    map[string]DomainMetadata
	history    []CommitInfo
	// checkpointVersion is the checkpoint replay started from, -1 if none.
	checkpointVersion int64
	// lastCheckpoint is the newest checkpoint version seen in the log, -1.
	lastCheckpoint int64
	timestamp      time.Time
}

func newEmptySnapshot() *Snapshot {
	return &Snapshot{
		version:           -1,
		files:             map[string]*AddFile{},
		tombstones:        map[string]*RemoveFile{},
		txns:              map[string]Txn{},
		domains:           map[string]DomainMetadata{},
		checkpointVersion: -1,
		lastCheckpoint:    -1,
	}
}

// clone returns a copy whose maps can be modified.
func (s *Snapshot) clone() *Snapshot {
	c := *s
	c.files = maps.Clone(s.files)
	c.tombstones = maps.Clone(s.tombstones)
	c.txns = maps.Clone(s.txns)
	c.domains = maps.Clone(s.domains)
	c.history = slices.Clip(s.history)
	return &c
}

// apply applies the actions of commit version (or of a checkpoint) to s,
// which must be private to the caller, as PROTOCOL.md's action
// reconciliation says. A logical file is keyed by (path, deletion vector
// uniqueId); the actions of one commit or checkpoint are not ordered, so
// its removes are applied before its adds: a remove drops the live file
// only when its key matches (the live file's path with the same DV), and
// an add replaces the live file of its path whatever its DV was. An add
// and a remove of the same key in one commit or checkpoint (which
// PROTOCOL.md forbids) keep the add: a checkpoint's adds are the live
// files, its removes only tombstones.
func (s *Snapshot) apply(version int64, acts []action, modTime time.Time) {
	var ci map[string]any
	for i := range acts {
		a := &acts[i]
		switch {
		case a.Remove != nil:
			k := StorageKey(a.Remove.Path)
			dk := dvKey(a.Remove.DeletionVector)
			if f, ok := s.files[k]; ok && dvKey(f.DeletionVector) == dk {
				delete(s.files, k)
			}
			s.tombstones[tombstoneKey(k, dk)] = a.Remove
		case a.MetaData != nil:
			s.metadata = a.MetaData
		case a.Protocol != nil:
			s.protocol = a.Protocol
		case a.Txn != nil:
			s.txns[a.Txn.AppID] = *a.Txn
		case a.DomainMetadata != nil:
			if a.DomainMetadata.Removed {
				delete(s.domains, a.DomainMetadata.Domain)
			} else {
				s.domains[a.DomainMetadata.Domain] = *a.DomainMetadata
			}
		case a.CommitInfo != nil:
			ci = a.CommitInfo
		}
	}
	for i := range acts {
		if a := acts[i].Add; a != nil {
			k := StorageKey(a.Path)
			s.files[k] = a
			delete(s.tombstones, tombstoneKey(k, dvKey(a.DeletionVector)))
		}
	}
	c := commitInfoOf(version, ci, modTime)
	s.history = append(s.history, c)
	s.version = version
	s.timestamp = c.Timestamp
}

// tombstoneKey keys a remove by (path, DV uniqueId); it sorts by path.
func tombstoneKey(key, dv string) string {
	if dv == "" {
		return key
	}
	return key + "\x00" + dv
}

// Version returns the snapshot's table version.
func (s *Snapshot) Version() int64 { return s.version }

// Timestamp returns the commit time of the snapshot's version.
func (s *Snapshot) Timestamp() time.Time { return s.timestamp }

// Protocol returns the table protocol.
func (s *Snapshot) Protocol() Protocol {
	p := *s.protocol
	p.ReaderFeatures = slices.Clone(p.ReaderFeatures)
	p.WriterFeatures = slices.Clone(p.WriterFeatures)
	return p
}

// Metadata returns the table metadata; the Schema must not be modified.
func (s *Snapshot) Metadata() Metadata {
	m := *s.metadata
	m.PartitionColumns = slices.Clone(m.PartitionColumns)
	m.Configuration = maps.Clone(m.Configuration)
	return m
}

// Schema returns the table schema; it must not be modified.
func (s *Snapshot) Schema() *StructType { return s.metadata.Schema }

// Files returns the active data files sorted by path.
func (s *Snapshot) Files() []AddFile {
	out := make([]AddFile, 0, len(s.files))
	for _, k := range slices.Sorted(maps.Keys(s.files)) {
		out = append(out, *s.files[k])
	}
	return out
}

// NumFiles returns the number of active files.
func (s *Snapshot) NumFiles() int { return len(s.files) }

// Tombstones returns the remove actions still in the state, sorted by path
// (one per path and deletion vector).
func (s *Snapshot) Tombstones() []RemoveFile {
	out := make([]RemoveFile, 0, len(s.tombstones))
	for _, k := range slices.Sorted(maps.Keys(s.tombstones)) {
		out = append(out, *s.tombstones[k])
	}
	return out
}

// TxnVersion returns the last version recorded by application appID.
func (s *Snapshot) TxnVersion(appID string) (int64, bool) {
	t, ok := s.txns[appID]
	return t.Version, ok
}

// Txns returns every application's transaction version.
func (s *Snapshot) Txns() map[string]int64 {
	out := make(map[string]int64, len(s.txns))
	for k, t := range s.txns {
		out[k] = t.Version
	}
	return out
}

// History returns the commits replayed to build the snapshot (those after
// the checkpoint it started from), oldest first. Table.History reads the
// whole log.
func (s *Snapshot) History() []CommitInfo { return slices.Clone(s.history) }

// CheckpointVersion returns the newest checkpoint seen in the log when the
// snapshot was loaded, or -1.
func (s *Snapshot) CheckpointVersion() int64 { return s.lastCheckpoint }

// Totals returns the active files' total size and, from their stats, the
// number of rows; rowsKnown is false when some file has no numRecords.
// Rows that deletion vectors remove (their cardinality) are not counted.
func (s *Snapshot) Totals() (bytes, rows int64, rowsKnown bool) {
	rowsKnown = true
	for _, f := range s.files {
		bytes += f.Size
		if n, ok := f.NumRecords(); ok {
			rows += n - f.deletedCount()
		} else {
			rowsKnown = false
		}
	}
	return bytes, rows, rowsKnown
}

// DeletedRows returns the number of rows that the active files' deletion
// vectors remove from the table.
func (s *Snapshot) DeletedRows() int64 {
	var n int64
	for _, f := range s.files {
		n += f.deletedCount()
	}
	return n
}

// config returns a table property.
func (s *Snapshot) config(key string) (string, bool) {
	v, ok := s.metadata.Configuration[key]
	return v, ok
}

func (s *Snapshot) configBool(key string) bool {
	v, _ := s.config(key)
	return strings.EqualFold(strings.TrimSpace(v), "true")
}

func (s *Snapshot) configInt(key string, def int) int {
	v, ok := s.config(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return def
	}
	return n
}
