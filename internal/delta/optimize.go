package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultTargetFileSize is the size OPTIMIZE and auto-compaction aim a
// data file at when the table has no delta.targetFileSize: 128 MiB, the
// value Delta's writers use for auto-compaction.
const DefaultTargetFileSize = 128 << 20

// propTargetFileSize is the table property of the target file size.
const propTargetFileSize = "delta.targetFileSize"

// OptimizeOptions configures Optimize.
type OptimizeOptions struct {
	// Where limits the rewrite to the partitions it accepts; it may name
	// partition columns only (Predicate.PartitionOnly). Nil: every
	// partition.
	Where *Predicate
	// ZOrderBy are top-level data columns (not partition columns) to
	// cluster each partition's rows by (see Optimize). Empty: bin-packing.
	ZOrderBy []string
	// TargetSize is the file size aimed at, in bytes; 0 means the table's
	// delta.targetFileSize, else DefaultTargetFileSize.
	TargetSize int64
	// MinFiles is the fewest small files (smaller than SmallSize) a
	// partition needs before bin-packing rewrites it; 0 means 2.
	MinFiles int
	// SmallSize is the size below which bin-packing takes a file; 0 means
	// TargetSize.
	SmallSize int64
	// DryRun plans the rewrite and reports it without writing anything.
	DryRun bool
	// MaxAttempts bounds the plans tried when concurrent commits remove
	// files this one rewrites (the rewrite gives way and plans again on the
	// new snapshot); 0 means 3, 1 gives way at once.
	MaxAttempts int
	// Auto marks the commit as auto-compaction (operationParameters.auto).
	Auto bool
}

// OptimizeResult describes what Optimize did (or, with DryRun, would do).
type OptimizeResult struct {
	// Version is the OPTIMIZE commit's version; -1 when nothing was
	// committed (nothing to do, or DryRun).
	Version int64
	// ReadVersion is the version the committed plan was made from.
	ReadVersion int64
	// Partitions is how many partitions had files rewritten.
	Partitions int
	// FilesConsidered and BytesConsidered are the active files in the
	// partitions Where accepts, before the rewrite.
	FilesConsidered int
	BytesConsidered int64
	// Removed and Added are the files rewritten and written (for a
	// DryRun, Added is an estimate: one per bin, or per target size
	// when Z-ordering).
	RemovedFiles, AddedFiles int
	RemovedBytes, AddedBytes int64
	// Rows is the number of rows rewritten.
	Rows int64
	// Attempts is how many plans were made (more than 1 after giving way
	// to concurrent commits).
	Attempts int
}

// optimizeBin is a set of files of one partition rewritten together.
type optimizeBin struct {
	values map[string]string
	files  []AddFile
	bytes  int64
}

// Optimize rewrites the small files of each partition into files near the
// target size, in one commit of remove and add actions with dataChange
// false: the table's rows stay the same, only their files change. It is
// OPTIMIZE of Delta Lake.
//
// Bin-packing (no ZOrderBy): in each partition, the files smaller than
// SmallSize, oldest first, are grouped into bins of at most the target
// size; each bin of two or more files becomes one file (rows in the order
// of the files). With Auto, the largest of those files are left out while
// each is larger than all the smaller ones together (see smallFiles). A
// partition with fewer than MinFiles such files is left alone. Memory: one
// output file and one input file's rows at a time.
//
// Z-order: every file of each partition is read, its rows sorted by the
// Z-value of the ZOrderBy columns (the bits of each column's value rank,
// scaled to 32 bits, interleaved), and written as files of about the
// target size, so files cover narrow ranges of every column and a filter
// on any of them skips files by their min/max statistics. A partition of
// one file no larger than the target is left alone. Memory: the rows of
// one partition.
//
// Commit: a concurrent append is never a conflict (its files are not
// touched and its commit is not delayed: the rewrite takes the next free
// version). A concurrent commit that removed a file being rewritten, or
// changed the metadata or protocol, makes this one give way: its new files
// are deleted and it plans again from the new snapshot, up to MaxAttempts,
// then returns a *ConflictError. Rows are never lost or duplicated.
func (t *Table) Optimize(ctx context.Context, opts OptimizeOptions) (OptimizeResult, error) {
	attempts := opts.MaxAttempts
	if attempts <= 0 {
		attempts = 3
	}
	var lastErr error
	for i := 1; i <= attempts; i++ {
		res, err := t.optimizeOnce(ctx, opts)
		res.Attempts = i
		var ce *ConflictError
		if !errors.As(err, &ce) {
			return res, err
		}
		t.log.Debug("delta_optimize_gave_way", "attempt", i, "error", err)
		lastErr = err
	}
	return OptimizeResult{Version: -1, Attempts: attempts}, lastErr
}

// TargetFileSize returns the table's delta.targetFileSize in bytes, or
// DefaultTargetFileSize when it is not set or not a size.
func (s *Snapshot) TargetFileSize() int64 {
	v, ok := s.config(propTargetFileSize)
	if !ok {
		return DefaultTargetFileSize
	}
	n, err := ParseSize(v)
	if err != nil || n <= 0 {
		return DefaultTargetFileSize
	}
	return n
}

// ParseSize parses a byte size: a number of bytes, or one with a unit b,
// k, kb, kib, m, mb, mib, g, gb, gib, t, tb, tib (any case; every unit is a
// power of 1024, as Spark reads sizes), e.g. "134217728", "128mb", "1GiB".
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	shift := map[string]uint{"": 0, "b": 0, "k": 10, "kb": 10, "kib": 10, "m": 20, "mb": 20, "mib": 20, "g": 30, "gb": 30, "gib": 30, "t": 40, "tb": 40, "tib": 40}
	sh, ok := shift[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 || f*float64(int64(1)<<sh) >= 1<<62 {
		return 0, fmt.Errorf("size %q: want bytes or a number with a unit such as 64MiB, 128mb, 1g", s)
	}
	return int64(f * float64(int64(1)<<sh)), nil
}

func (t *Table) optimizeOnce(ctx context.Context, opts OptimizeOptions) (OptimizeResult, error) {
	res := OptimizeResult{Version: -1}
	snap, err := t.update(ctx)
	if err != nil {
		return res, err
	}
	res.ReadVersion = snap.version
	if err := checkWritable(snap); err != nil {
		return res, err
	}
	if err := checkReadable(snap); err != nil {
		return res, err
	}
	if rowTrackingOn(snap) {
		// Rewritten rows must keep their row ids, which needs the
		// materialized row-id columns kpipe does not write.
		return res, fmt.Errorf("%w: OPTIMIZE of a table with rowTracking (row ids would not be kept); run it with Spark or Databricks", ErrUnsupportedFeature)
	}
	if err := checkZOrder(snap, opts.ZOrderBy); err != nil {
		return res, err
	}
	if opts.Where != nil && !opts.Where.PartitionOnly() {
		var bad []string
		for _, c := range opts.Where.Columns() {
			if !slices.Contains(snap.metadata.PartitionColumns, c) {
				bad = append(bad, c)
			}
		}
		return res, fmt.Errorf("%w: OPTIMIZE's predicate may name partition columns only (%s), not %s", ErrPredicate,
			strings.Join(snap.metadata.PartitionColumns, ", "), strings.Join(bad, ", "))
	}
	target := opts.TargetSize
	if target <= 0 {
		target = snap.TargetFileSize()
	}
	bins, considered, consideredBytes := planOptimize(snap, opts, target)
	res.FilesConsidered, res.BytesConsidered = considered, consideredBytes
	parts := map[string]bool{}
	for _, b := range bins {
		k, _ := partitionDir(partitionKeyColumns(snap), b.values)
		parts[k] = true
		res.RemovedFiles += len(b.files)
		res.RemovedBytes += b.bytes
		for _, f := range b.files {
			if n, ok := f.NumRecords(); ok {
				res.Rows += n
			}
		}
		if opts.DryRun {
			if len(opts.ZOrderBy) > 0 {
				res.AddedFiles += int(max(1, (b.bytes+target-1)/target))
			} else {
				res.AddedFiles++
			}
		}
	}
	res.Partitions = len(parts)
	if opts.DryRun || len(bins) == 0 {
		if opts.DryRun {
			res.AddedBytes = res.RemovedBytes
		}
		return res, nil
	}

	plan, err := compactionPlan(snap)
	if err != nil {
		return res, err
	}
	var added []AddFile
	cleanup := func() {
		for _, f := range added {
			if key, err := dataFileKey(t.store, f.Path); err == nil {
				_ = t.store.Delete(context.WithoutCancel(ctx), key)
			}
		}
	}
	res.Rows = 0
	for _, b := range bins {
		var files []AddFile
		var rows int64
		if len(opts.ZOrderBy) > 0 {
			files, rows, err = t.rewriteZOrder(ctx, snap, plan, b, opts.ZOrderBy, target)
		} else {
			files, rows, err = t.rewriteBin(ctx, snap, plan, b)
		}
		added = append(added, files...)
		if err != nil {
			cleanup()
			return res, err
		}
		res.Rows += rows
	}
	for _, f := range added {
		res.AddedBytes += f.Size
	}
	res.AddedFiles = len(added)

	now := time.Now()
	acts := optimizeActions(snap, opts, bins, added, res, now)
	base, version, acts, err := t.commitOptimize(ctx, snap, acts, bins)
	if err != nil {
		var ce *ConflictError
		if errors.As(err, &ce) {
			cleanup() // never committed: nothing refers to them
		}
		return res, err
	}
	ns := base.clone()
	ns.history = nil
	ns.apply(version, acts, now)
	t.setLatest(ns)
	res.Version = version
	t.maybeCheckpoint(ctx, ns)
	return res, nil
}

func checkZOrder(snap *Snapshot, cols []string) error {
	seen := map[string]bool{}
	for _, c := range cols {
		f := snap.metadata.Schema.Field(c)
		switch {
		case f == nil:
			return fmt.Errorf("%w: Z-order column %q is not in the table (it has %s)", ErrPredicate, c, strings.Join(fieldNames(snap.metadata.Schema), ", "))
		case slices.Contains(snap.metadata.PartitionColumns, c):
			return fmt.Errorf("%w: Z-order column %q is a partition column: each partition is Z-ordered on its own, so order by data columns only", ErrPredicate, c)
		case seen[c]:
			return fmt.Errorf("%w: Z-order column %q given twice", ErrPredicate, c)
		case !statEligible(f.Type):
			return fmt.Errorf("%w: Z-order column %q is a %s, which has no min/max statistics to skip files by", ErrPredicate, c, f.Type)
		}
		seen[c] = true
	}
	return nil
}

// planOptimize groups the files of the accepted partitions into bins (see
// Optimize) and counts the files considered.
func planOptimize(snap *Snapshot, opts OptimizeOptions, target int64) ([]optimizeBin, int, int64) {
	partCols := partitionKeyColumns(snap)
	byPart := map[string][]AddFile{}
	var keys []string
	considered, consideredBytes := 0, int64(0)
	for _, f := range snap.Files() {
		if opts.Where != nil && !opts.Where.MayMatch(f) {
			continue
		}
		considered++
		consideredBytes += f.Size
		k, _ := partitionDir(partCols, f.PartitionValues)
		if _, ok := byPart[k]; !ok {
			keys = append(keys, k)
		}
		byPart[k] = append(byPart[k], f)
	}
	slices.Sort(keys)
	small := opts.SmallSize
	if small <= 0 {
		small = target
	}
	minFiles := max(opts.MinFiles, 2)
	var bins []optimizeBin
	for _, k := range keys {
		files := byPart[k]
		slices.SortStableFunc(files, func(a, b AddFile) int {
			if c := compareInt(a.ModificationTime, b.ModificationTime); c != 0 {
				return c
			}
			return strings.Compare(a.Path, b.Path)
		})
		values := files[0].PartitionValues
		if len(opts.ZOrderBy) > 0 {
			b := optimizeBin{values: values, files: files}
			for _, f := range files {
				b.bytes += f.Size
			}
			if len(files) > 1 || b.bytes > target {
				bins = append(bins, b)
			}
			continue
		}
		// Bins are filled by estimated output size (see sizeModel).
		model := fitSizeModel(files)
		cands := smallFiles(files, small, opts.Auto)
		if len(cands) < minFiles {
			continue
		}
		est := int64(model.fixed)
		cur := optimizeBin{values: values}
		flush := func() {
			if len(cur.files) > 1 {
				bins = append(bins, cur)
			}
			cur, est = optimizeBin{values: values}, int64(model.fixed)
		}
		for _, f := range cands {
			e := estimatedSize(f, model)
			if len(cur.files) > 0 && est+e > target {
				flush()
			}
			cur.files = append(cur.files, f)
			cur.bytes += f.Size
			est += e
		}
		flush()
	}
	return bins, considered, consideredBytes
}

// smallFiles returns the files of a partition (oldest first) that
// bin-packing takes: those smaller than small. For an auto-compaction
// pass (tiered), the largest of them are left out for as long as the
// largest holds more than all the smaller ones together, by their sizes
// less the fixed cost of a file (a sizeModel fitted to them: a small
// file is mostly that cost). So a file that compaction made is
// rewritten only once the smaller files add up to its size, and a row's
// file at least doubles each time the row is rewritten, as in a
// size-tiered LSM tree: a row is rewritten at most log2(half the target /
// a commit's data) times, not once per pass. Without it, the one growing
// file of a partition took in the new files of every pass, a rewrite of
// every row of the partition each time: at 10,000-row flushes (185 KB
// files), kpipe bench --events 2000000 spent 36% of the worker's CPU
// compacting.
func smallFiles(files []AddFile, small int64, tiered bool) []AddFile {
	var out []AddFile
	for _, f := range files {
		if f.Size < small {
			out = append(out, f)
		}
	}
	if !tiered || len(out) < 2 {
		return out
	}
	model := fitSizeModel(out)
	size := make([]int64, len(out))
	bySize := make([]int, len(out))
	var sum int64 // of the files, then of those smaller than the largest kept
	for i, f := range out {
		size[i], bySize[i] = estimatedSize(f, model), i
		sum += size[i]
	}
	slices.SortStableFunc(bySize, func(a, b int) int { return compareInt(size[a], size[b]) })
	keep := len(out) // the smallest keep files stay
	for keep > 1 {
		largest := size[bySize[keep-1]]
		if sum -= largest; largest <= sum {
			break
		}
		keep--
	}
	if keep == len(out) {
		return out
	}
	kept := make([]bool, len(out))
	for _, i := range bySize[:keep] {
		kept[i] = true
	}
	n := 0
	for i, f := range out {
		if kept[i] {
			out[n] = f
			n++
		}
	}
	return out[:n]
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compactionPlan is a write plan of snap's data columns of its own: the
// Table's cached plan presizes buffers from the last file written, which a
// large rewritten file must not inflate for the small appends.
func compactionPlan(snap *Snapshot) (*writePlan, error) {
	partCols := snap.metadata.PartitionColumns
	numIdx := snap.configInt("delta.dataSkippingNumIndexedCols", 32)
	if numIdx < 0 {
		numIdx = 1 << 30
	}
	data := &StructType{}
	var ignore []string
	for _, f := range snap.metadata.Schema.Fields {
		if slices.Contains(partCols, f.Name) {
			ignore = append(ignore, f.Name)
		} else {
			data.Fields = append(data.Fields, f)
		}
	}
	plan, err := newMappedWritePlan(data, numIdx, mappingMode(snap), clusteringColumns(snap)...)
	if err != nil {
		return nil, err
	}
	plan.setIgnore(ignore)
	return plan, nil
}

// rewriteBin writes the rows of b's files, in order, as one file. The rows
// stream through: each input file is read a few rows at a time, and the
// output is written in row groups as they fill (rewriteFile).
func (t *Table) rewriteBin(ctx context.Context, snap *Snapshot, plan *writePlan, b optimizeBin) ([]AddFile, int64, error) {
	out, err := t.newRewriteFile(snap, plan, b.values, 0, flushRows, bytesPerRow(b.files))
	if err != nil {
		return nil, 0, err
	}
	defer out.release()
	nparts := len(snap.metadata.PartitionColumns)
	for _, f := range b.files {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		if err := t.addFileRows(ctx, snap, out.enc, f, nparts); err != nil {
			return nil, 0, err
		}
	}
	if out.enc.n == 0 {
		return nil, 0, nil // files without rows: removed, nothing to add
	}
	n := out.enc.n
	add, err := out.finish(ctx)
	if err != nil {
		return nil, 0, err
	}
	return []AddFile{add}, n, nil
}

// optimizeActions are the OPTIMIZE commit's actions: commitInfo, a remove
// of every rewritten file and an add of every new one.
func optimizeActions(snap *Snapshot, opts OptimizeOptions, bins []optimizeBin, added []AddFile, res OptimizeResult, now time.Time) []action {
	pred := []string{}
	if opts.Where != nil {
		pred = append(pred, opts.Where.String())
	}
	zorder := opts.ZOrderBy
	if zorder == nil {
		zorder = []string{}
	}
	sizes := make([]int64, len(added))
	for i, f := range added {
		sizes[i] = f.Size
	}
	slices.Sort(sizes)
	q := func(p float64) string {
		if len(sizes) == 0 {
			return "0"
		}
		return strconv.FormatInt(sizes[int(p*float64(len(sizes)-1))], 10)
	}
	avg := int64(0)
	if len(sizes) > 0 {
		avg = res.AddedBytes / int64(len(sizes))
	}
	var removedSizes []int64
	for _, b := range bins {
		for _, f := range b.files {
			removedSizes = append(removedSizes, f.Size)
		}
	}
	slices.Sort(removedSizes)
	metrics := map[string]string{
		"numRemovedFiles":        strconv.Itoa(res.RemovedFiles),
		"numAddedFiles":          strconv.Itoa(res.AddedFiles),
		"numRemovedBytes":        strconv.FormatInt(res.RemovedBytes, 10),
		"numAddedBytes":          strconv.FormatInt(res.AddedBytes, 10),
		"minFileSize":            q(0),
		"p25FileSize":            q(0.25),
		"p50FileSize":            q(0.5),
		"p75FileSize":            q(0.75),
		"maxFileSize":            q(1),
		"avgFileSize":            strconv.FormatInt(avg, 10),
		"numBatches":             strconv.Itoa(len(bins)),
		"numOutputRows":          strconv.FormatInt(res.Rows, 10),
		"totalConsideredFiles":   strconv.Itoa(res.FilesConsidered),
		"numPartitionsOptimized": strconv.Itoa(res.Partitions),
	}
	if len(removedSizes) > 0 {
		metrics["minRemovedFileSize"] = strconv.FormatInt(removedSizes[0], 10)
		metrics["maxRemovedFileSize"] = strconv.FormatInt(removedSizes[len(removedSizes)-1], 10)
		metrics["avgRemovedFileSize"] = strconv.FormatInt(res.RemovedBytes/int64(len(removedSizes)), 10)
	}
	acts := []action{{CommitInfo: map[string]any{
		"timestamp": now.UnixMilli(),
		"operation": "OPTIMIZE",
		"operationParameters": map[string]any{
			"predicate": jsonStringPlain(pred),
			"zOrderBy":  jsonStringPlain(zorder),
			"auto":      opts.Auto,
		},
		"readVersion":      snap.version,
		"isolationLevel":   "SnapshotIsolation",
		"isBlindAppend":    false,
		"operationMetrics": metrics,
		"engineInfo":       EngineInfo(),
		"txnId":            newUUID(),
	}}}
	ms := now.UnixMilli()
	for _, b := range bins {
		for _, f := range b.files {
			size := f.Size
			acts = append(acts, action{Remove: &RemoveFile{
				Path:              f.Path,
				DeletionTimestamp: &ms,
				DataChange:        false,
				PartitionValues:   f.PartitionValues,
				Size:              &size,
				Stats:             f.Stats,
				Tags:              f.Tags,
				DeletionVector:    f.DeletionVector, // the logical file is (path, DV)
			}})
		}
	}
	for i := range added {
		acts = append(acts, action{Add: &added[i]})
	}
	return acts
}

// commitOptimize commits acts (stamped per attempt, which it returns) after
// snap, put-if-absent, taking the next
// free version past concurrent commits that leave the rewritten files
// alone; one that removed any of them, or changed metadata or protocol, is
// a *ConflictError (the rewrite gives way).
func (t *Table) commitOptimize(ctx context.Context, snap *Snapshot, acts []action, bins []optimizeBin) (*Snapshot, int64, []action, error) {
	rewritten := map[string]bool{}
	for _, b := range bins {
		for _, f := range b.files {
			rewritten[StorageKey(f.Path)] = true
		}
	}
	base := snap
	version := snap.version + 1
	for attempt := 0; ; attempt++ {
		if attempt >= maxCommitAttempts {
			return nil, 0, nil, fmt.Errorf("delta: optimize commit gave up after %d concurrent commits", attempt)
		}
		// In-commit timestamps: commitInfo first, stamped for this
		// version (rowTracking tables are refused before).
		stamped, err := stampCommit(base, version, acts, t.now())
		if err != nil {
			return nil, 0, nil, err
		}
		entry, err := encodeLogEntry(stamped)
		if err != nil {
			return nil, 0, nil, err
		}
		err = t.store.PutIfAbsent(ctx, commitKey(version), entry)
		if err == nil {
			return base, version, stamped, nil
		}
		if !errors.Is(err, ErrExist) {
			return nil, 0, nil, fmt.Errorf("delta: committing version %d: %w", version, err)
		}
		data, err := t.store.Read(ctx, commitKey(version))
		if err != nil {
			return nil, 0, nil, fmt.Errorf("delta: reading concurrent commit %d: %w", version, err)
		}
		wacts, err := parseLogEntry(data)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("delta: concurrent commit %d: %w", version, err)
		}
		for _, a := range wacts {
			switch {
			case a.MetaData != nil:
				return nil, 0, nil, &ConflictError{Version: version, Reason: "table metadata changed during OPTIMIZE"}
			case a.Protocol != nil:
				return nil, 0, nil, &ConflictError{Version: version, Reason: "table protocol changed during OPTIMIZE"}
			case a.Remove != nil && rewritten[StorageKey(a.Remove.Path)]:
				return nil, 0, nil, &ConflictError{Version: version, Reason: fmt.Sprintf("file %s, which OPTIMIZE rewrites, was removed concurrently", a.Remove.Path)}
			}
		}
		next := base.clone()
		next.history = nil
		next.apply(version, wacts, time.Now())
		t.setLatest(next)
		base = next
		version++
	}
}

// jsonStringPlain is jsonString without HTML escaping ("day > 1" stays as
// written).
func jsonStringPlain(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}

// sizeModel estimates the size of a file of n rows as fixed + perRow×n,
// fitted (least squares) to the sizes and row counts of files: small files
// are mostly fixed Parquet overhead (footer, column chunk metadata), which
// a merged file does not repeat.
type sizeModel struct{ fixed, perRow float64 }

func fitSizeModel(files []AddFile) sizeModel {
	var n, sx, sy, sxx, sxy float64
	best := 0.0
	for _, f := range files {
		r, ok := f.NumRecords()
		if !ok || r <= 0 {
			continue
		}
		x, y := float64(r), float64(f.Size)
		n++
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
		if b := y / x; best == 0 || b < best {
			best = b
		}
	}
	if d := n*sxx - sx*sx; n >= 2 && d > 0 {
		slope := (n*sxy - sx*sy) / d
		fixed := (sy - slope*sx) / n
		if slope > 0 && fixed >= 0 {
			return sizeModel{fixed: fixed, perRow: slope}
		}
	}
	// Every file the same row count, or no fit: the best bytes per row.
	return sizeModel{perRow: best}
}

// bytesPerRow is the model's marginal bytes per row, 0 when unknown.
func bytesPerRow(files []AddFile) float64 { return fitSizeModel(files).perRow }

// estimatedSize is f's share of a merged file: its rows at the model's
// bytes per row, never more than its own size.
func estimatedSize(f AddFile, m sizeModel) int64 {
	if n, ok := f.NumRecords(); ok && m.perRow > 0 {
		return min(f.Size, int64(float64(n)*m.perRow))
	}
	return f.Size
}
