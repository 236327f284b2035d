package delta

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Writer features whose values depend on the version a commit lands at and
// on the table just before it; stampCommit sets them on every commit
// attempt, so a commit retried after a concurrent one recomputes them.
//
//   - rowTracking (PROTOCOL.md "Row Tracking"): every new add gets a
//     baseRowId above the table's row id high-water mark (the
//     delta.rowTracking domain) and defaultRowCommitVersion = the commit's
//     version; the commit carries the raised high-water mark.
//   - inCommitTimestamps (PROTOCOL.md "In-Commit Timestamps"): commitInfo
//     is the first action and carries inCommitTimestamp, the larger of the
//     wall clock and the previous commit's timestamp + 1 ms.

const (
	domainRowTracking      = "delta.rowTracking"
	propEnableRowTracking  = "delta.enableRowTracking"
	propRowTrackingSuspend = "delta.rowTrackingSuspended"
	propEnableICT          = "delta.enableInCommitTimestamps"
	propEnableTypeWidening = "delta.enableTypeWidening"
	propRowIDColumn        = "delta.rowTracking.materializedRowIdColumnName"
	propRowVersionColumn   = "delta.rowTracking.materializedRowCommitVersionColumnName"
)

// hasWriterFeature reports whether the protocol lists writer feature f.
func hasWriterFeature(p *Protocol, f string) bool {
	return p != nil && p.MinWriterVersion >= 7 && slices.Contains(p.WriterFeatures, f)
}

// rowTrackingOn: writers must assign row ids (the feature is supported and
// not suspended).
func rowTrackingOn(s *Snapshot) bool {
	return hasWriterFeature(s.protocol, "rowTracking") && !s.configBool(propRowTrackingSuspend)
}

// ictOn: in-commit timestamps are enabled in md under protocol p.
func ictOn(p *Protocol, md *Metadata) bool {
	if !hasWriterFeature(p, "inCommitTimestamp") || md == nil {
		return false
	}
	v, ok := md.Configuration[propEnableICT]
	return ok && (v == "true" || v == "TRUE" || v == "True")
}

// rowIDHighWaterMark is the highest row id assigned in s, -1 when none.
func rowIDHighWaterMark(s *Snapshot) (int64, error) {
	d, ok := s.domains[domainRowTracking]
	if !ok {
		return -1, nil
	}
	var c struct {
		HWM *int64 `json:"rowIdHighWaterMark"`
	}
	if err := json.Unmarshal([]byte(d.Configuration), &c); err != nil || c.HWM == nil {
		return 0, fmt.Errorf("%w: domainMetadata %s configuration %q has no rowIdHighWaterMark", ErrCorruptLog, domainRowTracking, d.Configuration)
	}
	return *c.HWM, nil
}

// stampCommit returns acts as committed at version on base: with row
// tracking, the adds get their row ids and commit version and a
// delta.rowTracking domainMetadata action the new high-water mark; with
// in-commit timestamps, commitInfo comes first with its inCommitTimestamp.
// acts itself is not modified.
func stampCommit(base *Snapshot, version int64, acts []action, now time.Time) ([]action, error) {
	md, proto := base.metadata, base.protocol
	for _, a := range acts {
		if a.MetaData != nil {
			md = a.MetaData
		}
		if a.Protocol != nil {
			proto = a.Protocol
		}
	}
	rt := base.protocol != nil && rowTrackingOn(base)
	ict := ictOn(proto, md)
	if !rt && !ict {
		return acts, nil
	}
	out := make([]action, 0, len(acts)+1)
	if ict {
		// commitInfo first, with the timestamp.
		var ci map[string]any
		for _, a := range acts {
			if a.CommitInfo != nil {
				ci = maps.Clone(a.CommitInfo)
			}
		}
		if ci == nil {
			ci = map[string]any{}
		}
		ts := now.UnixMilli()
		if base.version >= 0 {
			ts = max(ts, base.timestamp.UnixMilli()+1)
		}
		ci["inCommitTimestamp"] = json.Number(strconv.FormatInt(ts, 10))
		out = append(out, action{CommitInfo: ci})
	}
	hwm, err := int64(0), error(nil)
	if rt {
		if hwm, err = rowIDHighWaterMark(base); err != nil {
			return nil, err
		}
	}
	assigned := false
	for _, a := range acts {
		switch {
		case a.CommitInfo != nil && ict:
			continue // written first
		case a.DomainMetadata != nil && rt && a.DomainMetadata.Domain == domainRowTracking:
			continue // recomputed below
		case a.Add != nil && rt:
			n, ok := a.Add.NumRecords()
			if !ok {
				return nil, fmt.Errorf("delta: row tracking: add %s has no numRecords", a.Add.Path)
			}
			f := *a.Add
			id, v := hwm+1, version
			f.BaseRowID, f.DefaultRowCommitVersion = &id, &v
			hwm += n
			assigned = assigned || n > 0
			a = action{Add: &f}
		}
		out = append(out, a)
	}
	if assigned {
		out = append(out, action{DomainMetadata: &DomainMetadata{
			Domain:        domainRowTracking,
			Configuration: `{"rowIdHighWaterMark":` + strconv.FormatInt(hwm, 10) + `}`,
		}})
	}
	return out, nil
}

// featureProperties maps the table properties that turn a feature on to
// the feature (reader and writer, or writer only) and the protocol
// versions it needs; createProtocol uses it.
var featureProperties = []struct {
	prop, value string
	feature     string
	reader      bool
}{
	{propColumnMappingMode, "name", "columnMapping", true},
	{propColumnMappingMode, "id", "columnMapping", true},
	{propEnableRowTracking, "true", "rowTracking", false},
	{propEnableICT, "true", "inCommitTimestamp", false},
	{propEnableTypeWidening, "true", "typeWidening", true},
	{"delta.enableChangeDataFeed", "true", "changeDataFeed", false},
	{"delta.appendOnly", "true", "appendOnly", false},
	// An append never writes a DV and checkpoints stay single-file V2 spec
	// (docs/architecture.md "Table features and log replay").
	{"delta.enableDeletionVectors", "true", "deletionVectors", true},
	{"delta.checkpointPolicy", "v2", "v2Checkpoint", true},
}

// createProtocol returns the protocol of a new table with configuration
// conf and schema, and the configuration completed as Delta completes it
// (column mapping ids and maxColumnId, row tracking column names). Without
// feature properties it is the legacy (1, 4) protocol kpipe always wrote.
func createProtocol(conf map[string]string, schema *StructType) (Protocol, *StructType, error) {
	var readers, writers []string
	for _, fp := range featureProperties {
		if v, ok := conf[fp.prop]; ok && equalFoldASCII(v, fp.value) {
			if fp.reader && !slices.Contains(readers, fp.feature) {
				readers = append(readers, fp.feature)
			}
			if !slices.Contains(writers, fp.feature) {
				writers = append(writers, fp.feature)
			}
		}
	}
	needsTableFeatures := false
	for _, w := range writers {
		if w != "changeDataFeed" && w != "appendOnly" {
			needsTableFeatures = true
		}
	}
	walkFields(schema, "", func(_ string, f *StructField) {
		if f.Type == TypeTimestampNTZ && !slices.Contains(readers, "timestampNtz") {
			readers = append(readers, "timestampNtz")
			writers = append(writers, "timestampNtz")
			needsTableFeatures = true
		}
	})
	if !needsTableFeatures {
		return Protocol{MinReaderVersion: 1, MinWriterVersion: 4}, schema, nil
	}
	// Table features: every feature of the (1, 4) protocol kpipe writes
	// stays supported, and the ones asked for are added.
	for _, f := range []string{"appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns"} {
		if !slices.Contains(writers, f) {
			writers = append(writers, f)
		}
	}
	if slices.Contains(writers, "rowTracking") && !slices.Contains(writers, "domainMetadata") {
		writers = append(writers, "domainMetadata")
	}
	if m, ok := conf[propColumnMappingMode]; ok && (equalFoldASCII(m, "name") || equalFoldASCII(m, "id")) {
		conf[propColumnMappingMode] = map[bool]string{true: "name", false: "id"}[equalFoldASCII(m, "name")]
		maxID := maxColumnID(conf, schema)
		schema = assignColumnMapping(schema, &maxID)
		conf[propMaxColumnID] = strconv.FormatInt(maxID, 10)
	}
	if slices.Contains(writers, "rowTracking") {
		if _, ok := conf[propRowIDColumn]; !ok {
			conf[propRowIDColumn] = "_row-id-col-" + newUUID()
		}
		if _, ok := conf[propRowVersionColumn]; !ok {
			conf[propRowVersionColumn] = "_row-commit-version-col-" + newUUID()
		}
	}
	slices.Sort(writers)
	p := Protocol{MinReaderVersion: 1, MinWriterVersion: 7, WriterFeatures: writers}
	if len(readers) > 0 {
		slices.Sort(readers)
		p.MinReaderVersion, p.ReaderFeatures = 3, readers
	}
	return p, schema, nil
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// domainClustering is the domain of a clustered table's clustering
// columns (PROTOCOL.md "Clustered Table").
const domainClustering = "delta.clustering"

// clusteringColumns are the clustering columns of s as stats paths
// (physical names under column mapping, as the domain records them).
// Writers must write stats for them, whatever
// delta.dataSkippingNumIndexedCols says.
func clusteringColumns(s *Snapshot) [][]string {
	d, ok := s.domains[domainClustering]
	if !ok {
		return nil
	}
	var c struct {
		Columns [][]string `json:"clusteringColumns"`
	}
	if json.Unmarshal([]byte(d.Configuration), &c) != nil {
		return nil
	}
	return c.Columns
}
