package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"kpipe/internal/delta"
	"kpipe/internal/metrics"
)

// Commit implements AsyncFlusher. It first drops rows the table already
// holds (offset at or below the partition's stored txn version: a commit
// whose answer was lost, or another worker's), and with dedupe the rows
// whose key the table holds (counted in Duplicates), then commits the rest
// with one txn per partition of marks, in one Append. The rows the table
// refuses (each a *delta.SchemaError naming it, all found in the same pass)
// are left out of the commit and returned in Rejected, class
// schema_conflict. b is not changed, so a failed Commit can be retried with
// it.
func (w *DeltaWriter) Commit(ctx context.Context, b FlushBatch, marks []Mark) (*FlushResult, error) {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	buf := b.(*pendingBatch).rows
	res := &FlushResult{Table: w.cfg.TableName, Version: -1}

	appIDs := make([]string, len(marks))
	for i, m := range marks {
		appIDs[i] = AppID(w.worker, m.Topic, m.Partition)
	}
	stored, err := w.tbl.TxnVersions(ctx, appIDs)
	if err != nil {
		return nil, storageError("reading the txn versions of table "+w.cfg.TableName, err)
	}
	w.refreshSchema(ctx) // the snapshot this commit goes on
	rewind, reasons := w.applyResets(stored)
	txns := make(map[string]int64, len(marks))
	for i, m := range marks {
		if v, ok := stored[appIDs[i]]; ok && m.Offset <= v {
			continue
		}
		txns[appIDs[i]] = m.Offset
	}
	for id := range rewind {
		if _, ok := txns[id]; !ok {
			delete(rewind, id) // not in this commit
		}
	}
	keep := make([]pendingRow, 0, len(buf))
	if len(stored) == 0 {
		keep = append(keep, buf...)
	} else {
		ids := map[partKey]string{}
		for _, p := range buf {
			k := partKey{p.ev.Topic, p.ev.Partition}
			id, ok := ids[k]
			if !ok {
				id = AppID(w.worker, k.topic, k.partition)
				ids[k] = id
			}
			if v, ok := stored[id]; ok && p.ev.Offset <= v {
				res.Skipped++
				continue
			}
			keep = append(keep, p)
		}
	}
	for attempt := 1; ; attempt++ {
		rows, dups := keep, 0
		if w.dedupe != nil {
			if rows, dups, err = w.dedupe.drop(ctx, keep); err != nil {
				return nil, err
			}
		}
		written, err := w.appendRows(ctx, res, rows, dups, txns, rewind, reasons)
		if errors.Is(err, errDedupeRace) {
			if attempt < maxDedupeAttempts {
				continue // filter again against what the other writer committed
			}
			return nil, &StorageError{Op: "committing to table " + w.cfg.TableName, Err: err}
		}
		if err != nil {
			return nil, err
		}
		if w.dedupe != nil {
			w.dedupe.committed(written)
		}
		res.Duplicates = dups
		keep = written
		break
	}
	if len(keep) == 0 && len(txns) > 0 && len(res.Rejected) > 0 {
		// Everything was rejected: the marks still move on through the
		// worker's offset commit.
		res.Version = -1
	}
	res.Written = make([]*Event, len(keep))
	for i, p := range keep {
		res.Written[i] = p.ev
	}
	for _, p := range keep[max(0, len(keep)-metrics.MaxRecentRows):] {
		res.Rows = append(res.Rows, w.rowMap(p.vals))
	}
	return res, nil
}

// appendRows commits keep (rows past the stored txn versions and, with
// dedupe, not in the table) with txns in one Append, and returns the rows
// committed: keep less those the table rejected, which go into
// res.Rejected; it sets res.Version. dups is the number of duplicates
// dropped from the batch, recorded in the commit's commitInfo.
func (w *DeltaWriter) appendRows(ctx context.Context, res *FlushResult, keep []pendingRow, dups int, txns, rewind map[string]int64, reasons []string) ([]pendingRow, error) {
	if len(keep) == 0 && len(rewind) == 0 && dups == 0 {
		return keep, nil
	}
	// A reset partition's new txn version is committed even without
	// rows, so that the table stops holding the old log's offsets; so are
	// the txns of a batch of duplicates only, with their count.
	rows := delta.Rows{Columns: w.rowCols, Values: make([][]any, len(keep))}
	for i, p := range keep {
		rows.Values[i] = p.vals
	}
	opts := appendOptions{evolve: w.cfg.SchemaEvolution, casts: w.casts, commitInfo: map[string]any{}}
	if ids := w.ids.commitInfo(w.worker, txns); ids != nil {
		opts.commitInfo[CommitInfoTopicIDs] = ids
	}
	if dups > 0 {
		opts.commitInfo[CommitInfoDuplicatesDropped] = dups
	}
	if w.dedupe != nil && len(keep) > 0 {
		opts.check = func() error { return w.dedupe.recheck(ctx, keep) }
	}
	if len(rewind) > 0 {
		opts.rewind = rewind
		opts.commitInfo["kpipe.offsetReset"] = reasons
	}
	if w.publish != nil {
		opts.beforeCommit = func(rejected []*delta.SchemaError, version int64) error {
			pc := &PendingCommit{Table: w.cfg.TableName, Version: version}
			bad := make(map[int]bool, len(rejected))
			for _, se := range rejected {
				if se.Row >= 0 && se.Row < len(keep) {
					bad[se.Row] = true
					pc.Rejected = append(pc.Rejected, Rejection{Event: keep[se.Row].ev, Err: rejectionError(se)})
				}
			}
			for i, p := range keep {
				if !bad[i] {
					pc.Written = append(pc.Written, p.ev)
				}
			}
			return w.publish(ctx, pc)
		}
	}
	v, rejected, err := w.tbl.Append(ctx, rows, txns, opts)
	if err != nil {
		var se *delta.SchemaError
		var ste *StorageError
		if errors.Is(err, errDedupeRace) || errors.Is(err, ErrFatal) || errors.As(err, &ste) {
			return nil, err // from the dedupe check, classified already
		}
		if errors.As(err, &se) {
			// A schema problem not tied to one row: retrying cannot
			// help, and nothing may be committed past it.
			return nil, fmt.Errorf("table %s: %w", w.cfg.TableName, err)
		}
		return nil, storageError("committing to table "+w.cfg.TableName, err)
	}
	w.refreshSchema(ctx) // evolved by this commit, or by the ones it followed
	if len(rewind) > 0 && (v >= 0 || len(rejected) < len(keep)) {
		w.resetsCommitted(txns)
	}
	res.Version = v
	if len(rejected) > 0 {
		// Every row the table refused goes to the error topic; the
		// others are committed (once, by the call above).
		bad := make([]bool, len(keep))
		for _, se := range rejected {
			if se.Row < 0 || se.Row >= len(keep) || bad[se.Row] {
				return nil, fmt.Errorf("table %s: rejected row %d out of range: %w", w.cfg.TableName, se.Row, se)
			}
			bad[se.Row] = true
		}
		kept := make([]pendingRow, 0, len(keep)-len(rejected))
		for i, p := range keep {
			if !bad[i] {
				kept = append(kept, p)
			}
		}
		for _, se := range rejected {
			ev := keep[se.Row].ev
			ev.Errors = append(ev.Errors, rejectionError(se))
			res.Rejected = append(res.Rejected, ev)
		}
		keep = kept
	}
	return keep, nil
}

// offsetReset is one partition's reset: records at or below floor are in
// the table; reason goes into the commit's commitInfo.
type offsetReset struct {
	floor  int64
	reason string
}

// OverrideStored implements offsetOverrider.
func (w *DeltaWriter) OverrideStored(topic string, partition int32, floor int64, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.resets == nil {
		w.resets = map[partKey]offsetReset{}
	}
	w.resets[partKey{topic, partition}] = offsetReset{floor: floor, reason: reason}
}

// applyResets replaces, in stored, the versions of reset partitions by
// their floors, and returns the txns the commit may rewind (with the
// stored version they expect) and the reasons for commitInfo.
func (w *DeltaWriter) applyResets(stored map[string]int64) (rewind map[string]int64, reasons []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, r := range w.resets {
		id := AppID(w.worker, k.topic, k.partition)
		if rewind == nil {
			rewind = map[string]int64{}
		}
		if v, ok := stored[id]; ok {
			rewind[id] = v
		} else {
			rewind[id] = -1
		}
		if r.floor >= 0 {
			stored[id] = r.floor
		} else {
			delete(stored, id)
		}
		reasons = append(reasons, fmt.Sprintf("%s partition %d: %s", k.topic, k.partition, r.reason))
	}
	sort.Strings(reasons)
	return rewind, reasons
}

// resetsCommitted forgets the resets whose txns a commit recorded.
func (w *DeltaWriter) resetsCommitted(txns map[string]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.resets {
		if _, ok := txns[AppID(w.worker, k.topic, k.partition)]; ok {
			delete(w.resets, k)
		}
	}
}
