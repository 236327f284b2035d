package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// checkpointInterval returns how many commits apart checkpoints are.
func (t *Table) checkpointInterval(s *Snapshot) int {
	if t.opts.checkpointInterval > 0 {
		return t.opts.checkpointInterval
	}
	if n := s.configInt("delta.checkpointInterval", 10); n > 0 {
		return n
	}
	return 10
}

// maybeCheckpoint writes a checkpoint of s when its version is a multiple of
// the interval, when the previous attempt failed, or when the interval has
// passed since the newest checkpoint (the writer of a multiple was killed
// before its checkpoint, or lost the race for the version). It never fails
// the commit: errors are logged and the next commit tries again.
func (t *Table) maybeCheckpoint(ctx context.Context, s *Snapshot) {
	t.ckptMu.Lock()
	interval := int64(t.checkpointInterval(s))
	last := max(s.lastCheckpoint, t.ckptLast, 0)
	due := s.version > 0 && (s.version%interval == 0 || t.ckptRetry || s.version-last >= interval)
	if !due || t.ckptRunning {
		if due {
			t.ckptRetry = true
		}
		t.ckptMu.Unlock()
		return
	}
	t.ckptRunning = true
	t.ckptRetry = false
	t.ckptLast = max(t.ckptLast, s.version)
	t.ckptWG.Add(1)
	t.ckptMu.Unlock()

	run := func(ctx context.Context) {
		defer t.ckptWG.Done()
		err := t.Checkpoint(ctx, s)
		t.ckptMu.Lock()
		t.ckptRunning = false
		if err != nil {
			t.ckptRetry = true
		}
		t.ckptMu.Unlock()
		if err != nil {
			t.log.Warn("delta_checkpoint_failed", "version", s.version, "error", err)
		} else {
			t.log.Debug("delta_checkpoint_written", "version", s.version)
			t.cleanupAfterCheckpoint(ctx, s)
		}
	}
	if t.opts.asyncCheckpoints {
		go run(context.WithoutCancel(ctx))
	} else {
		run(ctx)
	}
}

// Checkpoint writes a classic checkpoint of s (if none exists for its
// version) and points _last_checkpoint at it. It is a single file, never
// multi-part: V1 spec, or on a table that supports v2Checkpoint the V2
// spec (a checkpointMetadata action, file actions inline, no sidecars),
// which PROTOCOL.md allows under the classic name. Stats are written as
// the table's delta.checkpoint.writeStatsAsJson / writeStatsAsStruct ask.
func (t *Table) Checkpoint(ctx context.Context, s *Snapshot) error {
	if err := checkWritable(s); err != nil {
		return err
	}
	rows := checkpointRows(s)
	plan, err := newWritePlan(checkpointSchemaFor(s), 0)
	if err != nil {
		return err
	}
	enc := newFileEncoder(plan, len(rows))
	defer enc.release()
	for _, r := range rows {
		if err := enc.add(r); err != nil {
			return fmt.Errorf("delta: checkpoint row: %w", err)
		}
	}
	data, err := enc.encode()
	if err != nil {
		return err
	}
	if err := t.store.PutIfAbsent(ctx, checkpointKey(s.version), data); err != nil && !errors.Is(err, ErrExist) {
		return fmt.Errorf("delta: writing checkpoint %d: %w", s.version, err)
	}
	if h, ok := t.readLastCheckpoint(ctx); ok && h.Version >= s.version && t.checkpointExists(ctx, h.Version) {
		return nil
	}
	lc, _ := json.Marshal(map[string]any{
		"version":       s.version,
		"size":          len(rows),
		"sizeInBytes":   len(data),
		"numOfAddFiles": len(s.files),
	})
	if err := t.store.Write(ctx, lastCheckpointKey, lc); err != nil {
		return fmt.Errorf("delta: writing _last_checkpoint: %w", err)
	}
	return nil
}

func strMapAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if v == "" {
			out[k] = nil
		} else {
			out[k] = v
		}
	}
	return out
}

func strsAny(s []string) any {
	if s == nil {
		return nil
	}
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

func optAny(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func checkpointRows(s *Snapshot) []map[string]any {
	p := s.protocol
	md := s.metadata
	var rows []map[string]any
	proto := map[string]any{
		"minReaderVersion": int32(p.MinReaderVersion),
		"minWriterVersion": int32(p.MinWriterVersion),
	}
	if p.MinReaderVersion >= 3 {
		proto["readerFeatures"] = strsAny(nonNil(p.ReaderFeatures))
	}
	if p.MinWriterVersion >= 7 {
		proto["writerFeatures"] = strsAny(nonNil(p.WriterFeatures))
	}
	rows = append(rows, map[string]any{"protocol": proto})
	meta := map[string]any{
		"id":               md.ID,
		"format":           map[string]any{"provider": orDefault(md.Format.Provider, "parquet"), "options": strMapAny(md.Format.Options)},
		"schemaString":     md.SchemaString,
		"partitionColumns": strsAny(nonNil(md.PartitionColumns)),
		"configuration":    strMapAny(md.Configuration),
		"createdTime":      optAny(md.CreatedTime),
	}
	if md.Name != "" {
		meta["name"] = md.Name
	}
	if md.Description != "" {
		meta["description"] = md.Description
	}
	rows = append(rows, map[string]any{"metaData": meta})
	for _, k := range slices.Sorted(maps.Keys(s.txns)) {
		tx := s.txns[k]
		rows = append(rows, map[string]any{"txn": map[string]any{"appId": tx.AppID, "version": tx.Version, "lastUpdated": optAny(tx.LastUpdated)}})
	}
	for _, k := range slices.Sorted(maps.Keys(s.domains)) {
		d := s.domains[k]
		rows = append(rows, map[string]any{"domainMetadata": map[string]any{"domain": d.Domain, "configuration": d.Configuration, "removed": false}})
	}
	statsJSON := s.configBoolDefault(propStatsAsJSON, true)
	var statsT, partT *StructType
	if s.configBoolDefault(propStatsAsStruct, false) {
		statsT, partT = statsParsedType(s), partitionParsedType(s)
	}
	for _, k := range slices.Sorted(maps.Keys(s.files)) {
		f := s.files[k]
		add := map[string]any{
			"path":                    f.Path,
			"partitionValues":         strMapAny(f.PartitionValues),
			"size":                    f.Size,
			"modificationTime":        f.ModificationTime,
			"dataChange":              false,
			"baseRowId":               optAny(f.BaseRowID),
			"defaultRowCommitVersion": optAny(f.DefaultRowCommitVersion),
		}
		if f.Stats != "" && statsJSON {
			add["stats"] = f.Stats
		}
		if statsT != nil {
			if ps := parsedStats(statsT, f.Stats); ps != nil {
				add["stats_parsed"] = ps
			}
			if partT != nil && len(partT.Fields) > 0 {
				add["partitionValues_parsed"] = parsedPartitions(partT, f.PartitionValues)
			}
		}
		if len(f.Tags) > 0 {
			add["tags"] = strMapAny(f.Tags)
		}
		if f.ClusteringProvider != "" {
			add["clusteringProvider"] = f.ClusteringProvider
		}
		if dv := dvRow(f.DeletionVector); dv != nil {
			add["deletionVector"] = dv
		}
		rows = append(rows, map[string]any{"add": add})
	}
	for _, k := range slices.Sorted(maps.Keys(s.tombstones)) {
		r := s.tombstones[k]
		rm := map[string]any{"path": r.Path, "deletionTimestamp": optAny(r.DeletionTimestamp), "dataChange": false}
		if r.ExtendedFileMetadata != nil {
			rm["extendedFileMetadata"] = *r.ExtendedFileMetadata
			rm["partitionValues"] = strMapAny(r.PartitionValues)
			rm["size"] = optAny(r.Size)
		}
		if dv := dvRow(r.DeletionVector); dv != nil {
			rm["deletionVector"] = dv
		}
		rows = append(rows, map[string]any{"remove": rm})
	}
	if s.supportsV2Checkpoints() {
		rows = append(rows, map[string]any{"checkpointMetadata": map[string]any{"version": s.version}})
	}
	return rows
}

// dvRow is a deletionVector field as a checkpoint row value, nil for none.
func dvRow(raw json.RawMessage) map[string]any {
	d, err := parseDV(raw)
	if err != nil || d == nil {
		return nil
	}
	m := map[string]any{
		"storageType":    d.StorageType,
		"pathOrInlineDv": d.PathOrInlineDv,
		"sizeInBytes":    d.SizeInBytes,
		"cardinality":    d.Cardinality,
	}
	if d.Offset != nil {
		m["offset"] = *d.Offset
	}
	if d.MaxRowIndex != nil {
		m["maxRowIndex"] = *d.MaxRowIndex
	}
	return m
}

// parsedPartitions is the partitionValues_parsed value of a file.
func parsedPartitions(t *StructType, pv map[string]string) map[string]any {
	out := map[string]any{}
	for _, fl := range t.Fields {
		if v, err := parsePartitionValue(fl.Type, pv[fl.Name]); err == nil && v != nil {
			out[fl.Name] = v
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
