package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrRetentionTooShort is wrapped by the error of a Vacuum asked to keep
// less than the table's delta.deletedFileRetentionDuration without Force.
var ErrRetentionTooShort = errors.New("delta: vacuum retention is shorter than the table's")

// VacuumOptions configures one Vacuum.
type VacuumOptions struct {
	// Retention is how old an unreferenced file must be to be deleted; nil
	// means the table's delta.deletedFileRetentionDuration (default 1
	// week). A shorter one than the table's is refused unless Force.
	Retention *time.Duration
	// Force allows a Retention below the table's. Files that concurrent
	// readers of older snapshots, or writers not yet committed, still
	// need can then be deleted.
	Force bool
	// DryRun finds the files and deletes nothing (and commits nothing).
	DryRun bool
	// Parallelism is how many deletes run at once; 0 means 16.
	Parallelism int
}

// VacuumFile is a file Vacuum deletes (or, dry run, would delete).
type VacuumFile struct {
	// Key is the file's storage key, relative to the table root.
	Key     string
	Size    int64
	ModTime time.Time
	// Removed is true for a file a remove action of the log names (its
	// tombstone expired), false for an orphan no action names: the data
	// file of a commit that lost its race, or of a writer that crashed
	// before committing.
	Removed bool
}

// VacuumResult describes a Vacuum.
type VacuumResult struct {
	// Version is the snapshot whose files were kept.
	Version int64
	// Retention is the retention used; TableRetention the table's.
	Retention, TableRetention time.Duration
	// Cutoff is the time before which an unreferenced file is deleted:
	// now minus Retention.
	Cutoff time.Time
	// Files are the files deleted (dry run: to delete), sorted by key;
	// Bytes is their total size.
	Files []VacuumFile
	Bytes int64
	// Deleted is how many of Files were deleted: all of them, unless
	// DryRun (0) or an error.
	Deleted int
	// Scanned counts the files listed outside the log and hidden paths,
	// Referenced those of them the snapshot needs, Young the unreferenced
	// ones kept because they are newer than Cutoff.
	Scanned, Referenced, Young int
	DryRun                     bool
}

// Vacuum deletes the data files that no snapshot within the retention
// needs: files a remove action took out of the table longer ago than the
// retention (remove.deletionTimestamp), and orphans (files under the table
// that no action names) last modified longer ago than the retention, so
// that a file a writer has written but not yet committed is kept. A file
// is deleted only when the latest snapshot does not reference it, it is
// not a tombstone younger than the cutoff, and its modification time is
// before the cutoff (as Delta's VACUUM).
//
// Nothing under _delta_log is deleted, nor any hidden file or folder (a
// name starting with '_' or '.', except partition folders such as
// "_col=1"), nor the folder "metadata" (Iceberg metadata of UniForm), nor
// anything in a folder holding a _delta_log of its own (a nested table).
//
// Vacuum first checks that this package can write the table (PROTOCOL.md's
// vacuumProtocolCheck: the writer protocol is checked on every table), then
// that the retention is not below the table's unless opts.Force. Unless
// DryRun, when there is something to delete it commits a "VACUUM START"
// commitInfo before deleting and a "VACUUM END" after (as Delta and
// delta-rs do), so that the table's history shows it with its metrics.
// Delete errors are returned joined, after every delete was tried; a file
// that could not be deleted is left for the next Vacuum.
func (t *Table) Vacuum(ctx context.Context, opts VacuumOptions) (VacuumResult, error) {
	snap, err := t.update(ctx)
	if err != nil {
		return VacuumResult{}, err
	}
	if err := checkVacuumable(snap); err != nil {
		return VacuumResult{}, err
	}
	tableRet, err := snap.configInterval(PropDeletedFileRetention, DefaultDeletedFileRetention)
	if err != nil {
		return VacuumResult{}, err
	}
	ret := tableRet
	if opts.Retention != nil {
		ret = *opts.Retention
	}
	if ret < 0 {
		return VacuumResult{}, fmt.Errorf("delta: vacuum retention %s: want 0 or more", ret)
	}
	if ret < tableRet && !opts.Force {
		return VacuumResult{}, fmt.Errorf("%w: asked to keep %s, the table keeps %s (%s); a shorter retention can delete files that readers of older versions, or writers that have not committed yet, still need: use the table's retention, or force it (--force) when no such reader or writer exists",
			ErrRetentionTooShort, ret, tableRet, PropDeletedFileRetention)
	}
	res := VacuumResult{Version: snap.version, Retention: ret, TableRetention: tableRet, DryRun: opts.DryRun}
	res.Cutoff = t.now().Add(-ret)

	keep, tombstones, err := vacuumKeep(t.store, snap, res.Cutoff)
	if err != nil {
		return VacuumResult{}, err
	}
	list, err := t.store.List(ctx, "", "")
	if err != nil {
		return VacuumResult{}, fmt.Errorf("delta: vacuum: listing %s: %w", t.store.Location(), err)
	}
	parts := snap.metadata.PartitionColumns
	nested := nestedTables(list)
	for _, fi := range list {
		if isLogKey(fi.Key) || vacuumHidden(fi.Key, parts) || underAny(fi.Key, nested) {
			continue
		}
		res.Scanned++
		switch {
		case keep[fi.Key]:
			res.Referenced++
		case !fi.ModTime.Before(res.Cutoff):
			res.Young++
		default:
			res.Files = append(res.Files, VacuumFile{Key: fi.Key, Size: fi.Size, ModTime: fi.ModTime, Removed: tombstones[fi.Key]})
			res.Bytes += fi.Size
		}
	}
	if opts.DryRun || len(res.Files) == 0 {
		return res, nil
	}

	start := vacuumCommitInfo("VACUUM START", t.now(), snap.version, map[string]any{
		"retentionCheckEnabled":    !opts.Force,
		"defaultRetentionMillis":   tableRet.Milliseconds(),
		"specifiedRetentionMillis": ret.Milliseconds(),
	}, map[string]string{
		"numFilesToDelete":   strconv.Itoa(len(res.Files)),
		"sizeOfDataToDelete": strconv.FormatInt(res.Bytes, 10),
	})
	if err := t.commitInfoOnly(ctx, snap, start); err != nil {
		return res, fmt.Errorf("delta: vacuum: committing VACUUM START (nothing deleted): %w", err)
	}
	keys := make([]string, len(res.Files))
	for i, f := range res.Files {
		keys[i] = f.Key
	}
	n, delErr := deleteKeys(ctx, t.store, keys, opts.Parallelism)
	res.Deleted = n
	status := "COMPLETED"
	if delErr != nil {
		status = "FAILED"
	}
	cur, err := t.update(ctx)
	if err != nil {
		return res, errors.Join(delErr, err)
	}
	end := vacuumCommitInfo("VACUUM END", t.now(), cur.version, map[string]any{"status": status}, map[string]string{
		"numDeletedFiles":        strconv.Itoa(n),
		"numVacuumedDirectories": "0",
	})
	if err := t.commitInfoOnly(ctx, cur, end); err != nil {
		return res, errors.Join(delErr, fmt.Errorf("delta: vacuum: committing VACUUM END (%d files deleted): %w", n, err))
	}
	if delErr != nil {
		return res, fmt.Errorf("delta: vacuum: %d of %d files deleted, run it again for the rest: %w", n, len(res.Files), delErr)
	}
	return res, nil
}

// checkVacuumable is PROTOCOL.md's vacuum protocol check, done on every
// table: the reader protocol and the writer protocol's versions and
// features must all be ones this package implements, since a feature it
// does not know could reference files (deletion vectors, sidecars) that
// Vacuum would take for orphans. Properties and schema features that only
// matter to appends (CHECK constraints, invariants) do not stop it.
func checkVacuumable(s *Snapshot) error {
	if err := checkReadable(s); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	p := s.protocol
	var bad []string
	switch {
	case p.MinWriterVersion > 7:
		bad = append(bad, "minWriterVersion "+itoa(p.MinWriterVersion))
	case p.MinWriterVersion == 7:
		for _, f := range p.WriterFeatures {
			if !slices.Contains(supportedWriterFeatures, f) {
				bad = append(bad, f)
			}
		}
	}
	if len(bad) > 0 {
		return unsupported("vacuum of table with", dedupe(bad)...)
	}
	return nil
}

// vacuumKeep returns the storage keys Vacuum must keep: the snapshot's
// active files and the tombstones whose deletion is not older than cutoff
// (snapshots within the retention still reference them), with the
// deletion-vector files either of them names, and the set of every
// tombstone's key (to tell removed files from orphans).
func vacuumKeep(store Storage, s *Snapshot, cutoff time.Time) (keep, tombstones map[string]bool, err error) {
	keep = make(map[string]bool, len(s.files))
	tombstones = make(map[string]bool, len(s.tombstones))
	for _, f := range s.files {
		k, err := dataFileKey(store, f.Path)
		if err != nil {
			continue // outside the table: never listed under it
		}
		keep[k] = true
		if err := keepDVFile(store, f.DeletionVector, keep); err != nil {
			return nil, nil, err
		}
	}
	ms := cutoff.UnixMilli()
	for _, r := range s.tombstones {
		k, err := dataFileKey(store, r.Path)
		if err != nil {
			continue
		}
		tombstones[k] = true
		if r.DeletionTimestamp != nil && *r.DeletionTimestamp >= ms {
			keep[k] = true
			if err := keepDVFile(store, r.DeletionVector, keep); err != nil {
				return nil, nil, err
			}
		}
	}
	return keep, tombstones, nil
}

// keepDVFile adds to keep the DV file a deletionVector descriptor names
// (storage types "u" and "p"; an inline DV has no file). A descriptor that
// does not parse stops the vacuum: it could name a file Vacuum would
// otherwise take for an orphan.
func keepDVFile(store Storage, raw json.RawMessage, keep map[string]bool) error {
	if len(raw) == 0 {
		return nil
	}
	d, err := parseDV(raw)
	if err != nil || d == nil {
		return err
	}
	if d.StorageType == "i" {
		return nil
	}
	k, err := dvFileKey(store, d)
	if err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	keep[k] = true
	return nil
}

// vacuumHidden reports whether Vacuum must leave a key alone: a path
// element (folder or file name) starting with '_' or '.', unless it is a
// partition folder ("col=value" of a partition column), or a top folder
// named "metadata" (as Delta's isHiddenDirectory).
func vacuumHidden(key string, partitionColumns []string) bool {
	elems := strings.Split(key, "/")
	if len(elems) > 1 && elems[0] == "metadata" {
		return true
	}
	for i, e := range elems {
		if !strings.HasPrefix(e, "_") && !strings.HasPrefix(e, ".") {
			continue
		}
		if i < len(elems)-1 && isPartitionFolder(e, partitionColumns) {
			continue
		}
		return true
	}
	return false
}

// nestedTables returns the folders of a listing that hold a Delta log of
// their own ("a/b/" for "a/b/_delta_log/..."): another table, whose files
// are not this one's orphans.
func nestedTables(list []FileInfo) []string {
	var out []string
	for _, fi := range list {
		if i := strings.Index(fi.Key, "/"+logDir); i > 0 {
			dir := fi.Key[:i+1]
			if len(out) == 0 || out[len(out)-1] != dir {
				out = append(out, dir)
			}
		}
	}
	return out
}

func underAny(key string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(key, d) {
			return true
		}
	}
	return false
}

func isPartitionFolder(name string, partitionColumns []string) bool {
	for _, c := range partitionColumns {
		if strings.HasPrefix(name, c+"=") || strings.HasPrefix(name, escapePartitionName(c)+"=") {
			return true
		}
	}
	return false
}

// escapePartitionName is a column name as a Hive-style folder spells it:
// characters a path cannot hold are %XX.
func escapePartitionName(c string) string {
	var b strings.Builder
	for i := 0; i < len(c); i++ {
		ch := c[i]
		if ch < 0x20 || strings.IndexByte("\"#%'*/:=?\\\x7f{[]^", ch) >= 0 {
			fmt.Fprintf(&b, "%%%02X", ch)
		} else {
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// deleteKeys deletes keys with up to parallelism deletes at once and
// returns how many succeeded and the errors joined.
func deleteKeys(ctx context.Context, store Storage, keys []string, parallelism int) (int, error) {
	if parallelism <= 0 {
		parallelism = 16
	}
	var (
		mu   sync.Mutex
		n    int
		errs []error
		wg   sync.WaitGroup
	)
	work := make(chan string)
	for range min(parallelism, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				err := store.Delete(ctx, k)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("deleting %s: %w", k, err))
				} else {
					n++
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	return n, errors.Join(errs...)
}

func vacuumCommitInfo(op string, now time.Time, readVersion int64, params map[string]any, metrics map[string]string) map[string]any {
	p := make(map[string]any, len(params))
	for k, v := range params {
		p[k] = jsonString(v)
	}
	return map[string]any{
		"timestamp":           now.UnixMilli(),
		"operation":           op,
		"operationParameters": p,
		"readVersion":         readVersion,
		"isolationLevel":      "SnapshotIsolation",
		"isBlindAppend":       true,
		"operationMetrics":    metrics,
		"engineInfo":          EngineInfo(),
		"txnId":               newUUID(),
	}
}

// commitInfoOnly commits a log entry holding only commitInfo ci after s
// (retried at the next version when a concurrent commit takes it).
func (t *Table) commitInfoOnly(ctx context.Context, s *Snapshot, ci map[string]any) error {
	acts := []action{{CommitInfo: ci}}
	base, version, stamped, err := t.commitActions(ctx, s, acts, nil)
	if err != nil {
		return err
	}
	ns := base.clone()
	ns.history = nil
	ns.apply(version, stamped, t.now())
	t.setLatest(ns)
	t.maybeCheckpoint(ctx, ns)
	return nil
}
