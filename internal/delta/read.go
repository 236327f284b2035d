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
	rows := []map[string]any{}
	err := eachFileRow(ctx, store, snap, f, func(r map[string]any) error {
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// eachFileRow is ReadFile calling fn with each row in file order instead
// of returning them: only a few rows of the file are in memory at a time.
// An error of fn stops the reading and is returned as it is; so is a
// deletion vector naming a row past the file's end, after fn has seen the
// file's rows.
func eachFileRow(ctx context.Context, store Storage, snap *Snapshot, f AddFile, fn func(map[string]any) error) error {
	if err := checkReadable(snap); err != nil {
		return err
	}
	data, err := readDataFile(ctx, store, f)
	if err != nil {
		return err
	}
	return eachDataRow(ctx, store, snap, f, data, fn)
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

// eachDataRow is eachFileRow of f's data, already read.
func eachDataRow(ctx context.Context, store Storage, snap *Snapshot, f AddFile, data []byte, fn func(map[string]any) error) error {
	schema := snap.metadata.Schema
	parts := snap.metadata.PartitionColumns
	dataSchema := &StructType{}
	for _, fl := range schema.Fields {
		if !slices.Contains(parts, fl.Name) {
			dataSchema.Fields = append(dataSchema.Fields, fl)
		}
	}
	del, err := DeletedRows(ctx, store, f)
	if err != nil {
		return err
	}
	partVals := make([]any, len(parts))
	for i, pc := range parts {
		fl := schema.Field(pc)
		if fl == nil {
			return fmt.Errorf("%w: partition column %q not in schema", ErrCorruptLog, pc)
		}
		if partVals[i], err = parsePartitionValue(fl.Type, partitionValue(snap, fl, f.PartitionValues)); err != nil {
			return fmt.Errorf("data file %s: partition %s: %w", f.Path, pc, err)
		}
	}
	var i uint64
	var fnErr error
	err = eachParquetRow(data, dataSchema, mappingMode(snap), nil, func(r map[string]any) error {
		if len(del) > 0 && del[0] == i {
			del = del[1:]
			i++
			return nil
		}
		i++
		for j, pc := range parts {
			r[pc] = partVals[j]
		}
		fnErr = fn(r)
		return fnErr
	})
	if err != nil {
		if fnErr != nil {
			return err
		}
		return fmt.Errorf("data file %s: %w", f.Path, err)
	}
	if len(del) > 0 {
		return fmt.Errorf("%w: deletion vector of %s removes row %d of a file of %d rows", ErrCorruptLog, f.Path, del[len(del)-1], i)
	}
	return nil
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
