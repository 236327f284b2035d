package delta

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"time"
)

// dataFile is one data file of an Append: a run of consecutive rows of one
// partition group.
type dataFile struct {
	g    *partGroup
	rows []int
	enc  *fileEncoder
	// first is whether this is the group's first file (the others copy
	// the partition values, so no two add actions share a map).
	first bool
}

// shreddedRows are the rows of one Append shredded per data file, ready to
// be encoded.
type shreddedRows struct {
	plan     *writePlan
	partCols []string
	// physCols are the partition columns' physical names under column
	// mapping (the keys of partition values and directories), else nil.
	physCols []string
	files    []*dataFile
}

func (s *shreddedRows) release() {
	for _, f := range s.files {
		if f.enc != nil {
			f.enc.release()
			f.enc = nil
		}
	}
}

// cachedPlan is the write plan of the last schema a Table wrote.
type cachedPlan struct {
	schema   *StructType
	partCols []string
	numIdx   int
	mode     string
	cluster  string
	plan     *writePlan
}

// writePlanFor returns the write plan of schema's data columns, cached
// while the schema (compared by identity: schemas are never modified in
// place) and the table settings stay the same.
func (t *Table) writePlanFor(snap *Snapshot, schema *StructType) (*writePlan, error) {
	partCols := snap.metadata.PartitionColumns
	numIdx := snap.configInt("delta.dataSkippingNumIndexedCols", 32)
	if numIdx < 0 {
		numIdx = 1 << 30
	}
	mode := mappingMode(snap)
	cluster := snap.domains[domainClustering].Configuration
	t.planMu.Lock()
	c := t.plan
	t.planMu.Unlock()
	if c != nil && c.schema == schema && c.numIdx == numIdx && c.mode == mode && c.cluster == cluster && slices.Equal(c.partCols, partCols) {
		return c.plan, nil
	}
	data := &StructType{}
	var ignore []string
	for _, f := range schema.Fields {
		if slices.Contains(partCols, f.Name) {
			ignore = append(ignore, f.Name)
		} else {
			data.Fields = append(data.Fields, f)
		}
	}
	plan, err := newMappedWritePlan(data, numIdx, mode, clusteringColumns(snap)...)
	if err != nil {
		return nil, err
	}
	plan.setIgnore(ignore)
	t.planMu.Lock()
	t.plan = &cachedPlan{schema: schema, partCols: slices.Clone(partCols), numIdx: numIdx, mode: mode, cluster: cluster, plan: plan}
	t.planMu.Unlock()
	return plan, nil
}

// shredRows groups rows by partition, splits the groups into data files
// (see Append) and shreds the files in parallel, encoding them in memory as
// it goes. A row that does not fit fails the call with a *SchemaError
// naming the lowest such row, before anything is written to storage.
func (t *Table) shredRows(snap *Snapshot, schema *StructType, rows inRows, minRowsPerFile int, opts AppendOptions) (*shreddedRows, error) {
	if rows.len() == 0 {
		return &shreddedRows{}, nil
	}
	partCols := snap.metadata.PartitionColumns
	plan, err := t.writePlanFor(snap, schema)
	if err != nil {
		return nil, err
	}
	casts := opts.Casts
	groups, present, err := groupRows(schema, partCols, rows, casts)
	if err != nil {
		return nil, err
	}
	var bind *rootBinding
	if rows.vals != nil {
		bind = bindRoot(plan, rows.cols)
	}
	files := splitGroups(groups, minRowsPerFile, runtime.GOMAXPROCS(0))
	sh := &shreddedRows{plan: plan, partCols: partCols, physCols: physicalPartitionColumns(snap), files: files}
	errs := make([]error, len(files))
	// Files are shredded in parallel, and each on the cores the others
	// leave (parquet_parallel.go).
	procs := max(1, runtime.GOMAXPROCS(0)/len(files))
	memo := &structMemo{}
	if opts.StableMaps {
		memo = &plan.memo
	}
	forEachGroup(len(files), func(fi int) {
		f := files[fi]
		f.enc = newFileEncoder(plan, len(f.rows))
		f.enc.casts, f.enc.memo = casts, memo
		errs[fi] = shredFile(f, shredIn{rows: rows, present: present, bind: bind}, procs)
	})
	if err := firstError(errs); err != nil {
		sh.release()
		return nil, err
	}
	return sh, nil
}

// splitGroups splits each group into k files of consecutive rows, k as
// Append documents: the files of a commit stay few (about procs, or one per
// partition), and each has at least minRows rows.
func splitGroups(groups []*partGroup, minRows, procs int) []*dataFile {
	files := make([]*dataFile, 0, len(groups))
	budget := procs / len(groups)
	for _, g := range groups {
		k := 1
		if minRows > 0 && budget >= 2 {
			k = max(1, min(len(g.rows)/minRows, budget))
		}
		n := len(g.rows)
		for j := range k {
			files = append(files, &dataFile{g: g, rows: g.rows[j*n/k : (j+1)*n/k], first: j == 0})
		}
	}
	return files
}

func forEachGroup(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

// firstError picks the *SchemaError of the lowest row, else the first
// error in group order.
func firstError(errs []error) error {
	var first error
	firstRow := -1
	for _, err := range errs {
		if err == nil {
			continue
		}
		var se *SchemaError
		if errors.As(err, &se) && (firstRow < 0 || se.Row < firstRow) {
			first, firstRow = err, se.Row
		} else if first == nil {
			first = err
		}
	}
	return first
}

// writeDataFiles encodes the shredded files in parallel and writes them;
// it releases sh. A storage that can defer folder fsyncs (dirSyncer) syncs
// each folder once after all files are written, not once per file.
func (t *Table) writeDataFiles(ctx context.Context, sh *shreddedRows) ([]AddFile, error) {
	defer sh.release()
	ds, _ := t.store.(dirSyncer)
	files := make([]AddFile, len(sh.files))
	keys := make([]string, len(sh.files))
	errs := make([]error, len(sh.files))
	forEachGroup(len(sh.files), func(fi int) {
		files[fi], keys[fi], errs[fi] = t.writeFile(ctx, sh.partCols, sh.physCols, fi, sh.files[fi], ds)
	})
	if err := firstError(errs); err != nil {
		return nil, err
	}
	if ds != nil {
		if err := ds.syncDirs(ctx, keys); err != nil {
			return nil, fmt.Errorf("delta: writing data files: %w", err)
		}
	}
	return files, nil
}

// writeFile encodes and writes data file f, the idx-th of its commit, and
// returns its add action and storage key.
func (t *Table) writeFile(ctx context.Context, partCols, physCols []string, idx int, f *dataFile, ds dirSyncer) (AddFile, string, error) {
	data, err := f.enc.encode()
	if err != nil {
		return AddFile{}, "", err
	}
	stats := f.enc.statsJSON()
	f.enc.release()
	f.enc = nil
	pv := f.g.values
	if physCols != nil && pv != nil {
		// Column mapping: partition values and folders by physical name.
		m := make(map[string]string, len(pv))
		for i, pc := range partCols {
			m[physCols[i]] = pv[pc]
		}
		pv, partCols = m, physCols
	}
	dirKey, dirPath := partitionDir(partCols, pv)
	name := dataFileName(idx)
	key := dirKey + name
	if ds != nil {
		err = ds.writeUnsynced(ctx, key, data)
	} else {
		err = t.store.Write(ctx, key, data)
	}
	if err != nil {
		return AddFile{}, "", fmt.Errorf("delta: writing data file: %w", err)
	}
	switch {
	case pv == nil:
		pv = map[string]string{}
	case !f.first:
		pv = maps.Clone(pv)
	}
	return AddFile{
		Path:             dirPath + name,
		PartitionValues:  pv,
		Size:             int64(len(data)),
		ModificationTime: time.Now().UnixMilli(),
		DataChange:       true,
		Stats:            stats,
	}, key, nil
}

// dataFileName is the name of a new data file, the idx-th of its write:
// part-NNNNN-UUID.c000.zstd.parquet, with a fresh UUID.
func dataFileName(idx int) string {
	return fmt.Sprintf("part-%05d-%s.c000.zstd.parquet", idx, newUUID())
}
