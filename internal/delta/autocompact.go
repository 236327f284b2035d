package delta

import (
	"context"
	"strings"
	"sync"
)

// propAutoCompact and propOptimizeWrite are the table properties that turn
// on auto-compaction and one file per partition per write.
const (
	propAutoCompact   = "delta.autoOptimize.autoCompact"
	propOptimizeWrite = "delta.autoOptimize.optimizeWrite"
)

// DefaultAutoCompactMinFiles is AutoCompact.MinFiles' default: a partition
// is compacted once it holds 50 small files, Delta's
// spark.databricks.delta.autoCompact.minNumFiles.
const DefaultAutoCompactMinFiles = 50

// AutoCompact configures auto-compaction (WithAutoCompact). A table whose
// property delta.autoOptimize.autoCompact is true (or "auto") compacts
// itself: after each Append that commits, when a partition the commit
// wrote holds at least MinFiles files smaller than half the target size,
// the Table bin-packs that partition's small files (Optimize with Auto
// set, the same dataChange=false commit) in the background. Of the small
// files, the largest ones are left for a later pass while each is larger
// than the smaller ones together (and do not count): a compacted file is
// rewritten once the new files add up to its size, not in every pass. One
// compaction runs at a time per Table; a commit during one asks for
// another pass after it. Appends never wait for it, and a compaction that
// meets a concurrent commit removing its files gives way at once (the
// next commit tries again). Close cancels a running compaction and waits
// for it; its new files, never committed, are deleted.
type AutoCompact struct {
	// Disable turns auto-compaction off whatever the table says.
	Disable bool
	// MinFiles is the fewest small files a partition needs; 0 means
	// DefaultAutoCompactMinFiles.
	MinFiles int
	// TargetSize overrides the table's delta.targetFileSize (bytes).
	TargetSize int64
	// Sync compacts before Append returns instead of in the background
	// (tests, one-shot tools). A failure is still only logged and
	// reported to OnCompact: the append has committed.
	Sync bool
	// OnCompact, if set, is called after every compaction that had work
	// to do, with its result and error (metrics). It must not block.
	OnCompact func(OptimizeResult, error)
}

// WithAutoCompact sets how the Table auto-compacts (see AutoCompact).
func WithAutoCompact(c AutoCompact) Option { return func(o *options) { o.autoCompact = c } }

// autoCompactor is a Table's background compaction state.
type autoCompactor struct {
	mu      sync.Mutex
	running bool
	again   bool
	closed  bool
	// parts are the partitions (partitionDir keys) written since the last
	// pass started, with their values.
	parts  map[string]map[string]string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func autoCompactOn(s *Snapshot) bool {
	v, _ := s.config(propAutoCompact)
	v = strings.ToLower(strings.TrimSpace(v))
	return v == "true" || v == "auto"
}

// maybeAutoCompact is called after an Append committed files to s: it
// notes their partitions and starts a compaction pass if none runs.
func (t *Table) maybeAutoCompact(ctx context.Context, s *Snapshot, files []AddFile) {
	cfg := t.opts.autoCompact
	if cfg.Disable || len(files) == 0 || !autoCompactOn(s) {
		return
	}
	ac := &t.ac
	ac.mu.Lock()
	if ac.closed {
		ac.mu.Unlock()
		return
	}
	if ac.parts == nil {
		ac.parts = map[string]map[string]string{}
	}
	for _, f := range files {
		k, _ := partitionDir(partitionKeyColumns(s), f.PartitionValues)
		ac.parts[k] = f.PartitionValues
	}
	if ac.running {
		ac.again = true
		ac.mu.Unlock()
		return
	}
	if ac.ctx == nil {
		ac.ctx, ac.cancel = context.WithCancel(context.WithoutCancel(ctx))
	}
	ac.running = true
	ac.wg.Add(1)
	runCtx := ac.ctx
	ac.mu.Unlock()
	if cfg.Sync {
		t.autoCompactLoop(runCtx)
	} else {
		go t.autoCompactLoop(runCtx)
	}
}

// autoCompactLoop runs passes until no commit asked for another.
func (t *Table) autoCompactLoop(ctx context.Context) {
	ac := &t.ac
	defer ac.wg.Done()
	for {
		ac.mu.Lock()
		parts := ac.parts
		ac.parts = nil
		ac.again = false
		ac.mu.Unlock()
		t.autoCompactPass(ctx, parts)
		ac.mu.Lock()
		if !ac.again || ac.closed || ctx.Err() != nil {
			ac.running = false
			ac.mu.Unlock()
			return
		}
		ac.mu.Unlock()
	}
}

// autoCompactPass compacts those of parts that hold enough small files.
func (t *Table) autoCompactPass(ctx context.Context, parts map[string]map[string]string) {
	cfg := t.opts.autoCompact
	snap := t.cached()
	if snap == nil || len(parts) == 0 || ctx.Err() != nil || rowTrackingOn(snap) {
		return // rowTracking: see optimizeOnce
	}
	target := cfg.TargetSize
	if target <= 0 {
		target = snap.TargetFileSize()
	}
	minFiles := cfg.MinFiles
	if minFiles <= 0 {
		minFiles = DefaultAutoCompactMinFiles
	}
	small := max(target/2, 1)
	// Count the small files a pass would take (planOptimize's
	// smallFiles) per written partition on the cached snapshot; Optimize
	// reads the latest itself.
	byPart := map[string][]AddFile{}
	for _, f := range snap.files {
		if f.Size >= small {
			continue
		}
		k, _ := partitionDir(partitionKeyColumns(snap), f.PartitionValues)
		if _, ok := parts[k]; ok {
			byPart[k] = append(byPart[k], *f)
		}
	}
	for k, values := range parts {
		// The count first: smallFiles reads each file's statistics.
		if files := byPart[k]; len(files) < minFiles || len(smallFiles(files, small, true)) < minFiles || ctx.Err() != nil {
			continue
		}
		res, err := t.Optimize(ctx, OptimizeOptions{
			Where:       partitionPredicate(snap, values),
			TargetSize:  target,
			SmallSize:   small,
			MinFiles:    minFiles,
			MaxAttempts: 1,
			Auto:        true,
		})
		if err != nil {
			if ctx.Err() == nil {
				t.log.Warn("delta_auto_compact_failed", "partition", k, "error", err)
			}
		} else if res.Version >= 0 {
			t.log.Debug("delta_auto_compacted", "partition", k, "version", res.Version,
				"removed_files", res.RemovedFiles, "added_files", res.AddedFiles)
		}
		if cfg.OnCompact != nil && (err != nil || res.Version >= 0) {
			cfg.OnCompact(res, err)
		}
	}
}

// partitionPredicate is the predicate that accepts exactly the partition
// of values (one equality, or IS NULL, per partition column).
func partitionPredicate(s *Snapshot, values map[string]string) *Predicate {
	cols := s.metadata.PartitionColumns
	p := &Predicate{parts: cols, cols: cols, key: map[string]string{}}
	if pc := physicalPartitionColumns(s); pc != nil {
		for i, c := range cols {
			p.key[c] = pc[i]
		}
	}
	root := &predNode{op: opAnd}
	var text []string
	for _, c := range cols {
		f := s.metadata.Schema.Field(c)
		if f == nil {
			continue
		}
		n := &predNode{col: c, typ: f.Type}
		raw := partitionValue(s, f, values)
		if raw == "" {
			n.op = opIsNull
			text = append(text, c+" IS NULL")
		} else {
			v, err := parsePartitionValue(f.Type, raw)
			if err != nil {
				continue
			}
			n.op, n.vals = opEq, []any{v}
			text = append(text, c+" = '"+strings.ReplaceAll(raw, "'", "''")+"'")
		}
		root.children = append(root.children, n)
	}
	p.root, p.text = root, strings.Join(text, " AND ")
	return p
}

// stopAutoCompact cancels a running compaction and keeps new ones from
// starting; waitAutoCompact then waits for it.
func (t *Table) stopAutoCompact() {
	ac := &t.ac
	ac.mu.Lock()
	ac.closed = true
	if ac.cancel != nil {
		ac.cancel()
	}
	ac.mu.Unlock()
}

func (t *Table) waitAutoCompact() { t.ac.wg.Wait() }
