package delta

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
)

// ReadRows reads every row of the snapshot's active files, file by file in
// path order, as maps typed by the table schema (see CoerceRow for the Go
// types); partition columns come from each file's partition values. It is
// meant for tests and small tables: everything is held in memory.
func ReadRows(ctx context.Context, store Storage, snap *Snapshot) ([]map[string]any, error) {
	if err := checkReadable(snap); err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, f := range snap.Files() {
		rows, err := ReadFile(ctx, store, snap, f)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// ReadFile reads the rows of one data file of the snapshot, without those
// its deletion vector removes.
func ReadFile(ctx context.Context, store Storage, snap *Snapshot, f AddFile) ([]map[string]any, error) {
	if err := checkReadable(snap); err != nil {
		return nil, err
	}
	data, err := readDataFile(ctx, store, f)
	if err != nil {
		return nil, err
	}
	return fileRows(ctx, store, snap, f, data)
}

// readDataFile reads the bytes of f's data file.
func readDataFile(ctx context.Context, store Storage, f AddFile) ([]byte, error) {
	key, err := dataFileKey(store, f.Path)
	if err != nil {
		return nil, err
	}
	data, err := store.Read(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading data file %s: %w", f.Path, err)
	}
	return data, nil
}

// fileRows is ReadFile of f's data, already read.
func fileRows(ctx context.Context, store Storage, snap *Snapshot, f AddFile, data []byte) ([]map[string]any, error) {
	schema := snap.metadata.Schema
	parts := snap.metadata.PartitionColumns
	dataSchema := &StructType{}
	for _, fl := range schema.Fields {
		if !slices.Contains(parts, fl.Name) {
			dataSchema.Fields = append(dataSchema.Fields, fl)
		}
	}
	rows, err := readMappedParquetRows(data, dataSchema, mappingMode(snap))
	if err != nil {
		return nil, fmt.Errorf("data file %s: %w", f.Path, err)
	}
	if rows, err = dropDeleted(ctx, store, f, rows); err != nil {
		return nil, err
	}
	for _, pc := range parts {
		fl := schema.Field(pc)
		if fl == nil {
			return nil, fmt.Errorf("%w: partition column %q not in schema", ErrCorruptLog, pc)
		}
		v, err := parsePartitionValue(fl.Type, partitionValue(snap, fl, f.PartitionValues))
		if err != nil {
			return nil, fmt.Errorf("data file %s: partition %s: %w", f.Path, pc, err)
		}
		for _, r := range rows {
			r[pc] = v
		}
	}
	return rows, nil
}

// dataFileKey resolves an add path to a storage key. Absolute paths are
// accepted when they point inside the storage root.
func dataFileKey(store Storage, p string) (string, error) {
	k := StorageKey(p)
	if strings.Contains(k, "://") || strings.HasPrefix(k, "/") {
		root := strings.TrimSuffix(store.Location(), "/") + "/"
		if rest, ok := strings.CutPrefix(path.Clean(k), root); ok {
			return rest, nil
		}
		return "", fmt.Errorf("%w: data file %s is outside the table location", ErrUnsupportedFeature, p)
	}
	return k, nil
}

// dropDeleted removes from rows (all rows of f's data file, in file order)
// those f's deletion vector removes.
func dropDeleted(ctx context.Context, store Storage, f AddFile, rows []map[string]any) ([]map[string]any, error) {
	del, err := DeletedRows(ctx, store, f)
	if err != nil || len(del) == 0 {
		return rows, err
	}
	if last := del[len(del)-1]; last >= uint64(len(rows)) {
		return nil, fmt.Errorf("%w: deletion vector of %s removes row %d of a file of %d rows", ErrCorruptLog, f.Path, last, len(rows))
	}
	out := rows[:0]
	for i, r := range rows {
		if len(del) > 0 && del[0] == uint64(i) {
			del = del[1:]
			continue
		}
		out = append(out, r)
	}
	return out, nil
}
