package delta

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LogCleanupResult describes one cleanup of expired log files.
type LogCleanupResult struct {
	// Cutoff is midnight UTC of the day now minus delta.logRetentionDuration
	// falls in: commits not newer than it are expired.
	Cutoff time.Time
	// Checkpoint is the version of the checkpoint kept as the oldest state
	// (the newest usable one at or before the newest expired commit), -1
	// when nothing could be deleted.
	Checkpoint int64
	// Deleted are the log files deleted, by key.
	Deleted []string
}

// CleanupExpiredLogs deletes the log files that PROTOCOL.md's Metadata
// Cleanup lets go: every commit, checkpoint, checksum (.crc) and log
// compaction file of a version before the cutoff checkpoint, which is the
// newest readable checkpoint not newer than the newest commit at or before
// the cutoff (midnight UTC of now minus delta.logRetentionDuration, default
// 30 days). That checkpoint and everything after it are kept, so every
// version from the cutoff on can still be read (SnapshotAt). A commit's
// time is its file's modification time, made monotonic over the versions
// (a version is no older than the one before it), as in Delta.
//
// A table whose delta.enableExpiredLogCleanup is "false" is left alone.
// _last_checkpoint, sidecars and files this package does not know are never
// deleted. Appends call it after each checkpoint they write; a failure is
// logged there and does not fail the commit.
func (t *Table) CleanupExpiredLogs(ctx context.Context) (LogCleanupResult, error) {
	snap, err := t.update(ctx)
	if err != nil {
		return LogCleanupResult{Checkpoint: -1}, err
	}
	return t.cleanupExpiredLogs(ctx, snap)
}

func (t *Table) cleanupExpiredLogs(ctx context.Context, s *Snapshot) (LogCleanupResult, error) {
	res := LogCleanupResult{Checkpoint: -1}
	if v, ok := s.config(PropExpiredLogCleanup); ok && strings.EqualFold(strings.TrimSpace(v), "false") {
		return res, nil
	}
	if err := checkVacuumable(s); err != nil {
		return res, fmt.Errorf("log cleanup: %w", err)
	}
	ret, err := s.configInterval(PropLogRetention, DefaultLogRetention)
	if err != nil {
		return res, err
	}
	res.Cutoff = t.now().Add(-ret).UTC().Truncate(24 * time.Hour)

	list, err := t.store.List(ctx, logDir, logDir)
	if err != nil {
		return res, err
	}
	var commits []logFile
	var other []logFile // checkpoints, crc, compactions: by version, to delete with the commits
	byTotal := map[int64]map[int][]logFile{}
	for _, fi := range list {
		lf, ok := parseLogFileName(fi.Key)
		if ok {
			lf.size, lf.modTime = fi.Size, fi.ModTime
			if lf.kind == logCommit {
				commits = append(commits, lf)
			} else {
				other = append(other, lf)
				if byTotal[lf.version] == nil {
					byTotal[lf.version] = map[int][]logFile{}
				}
				byTotal[lf.version][lf.parts] = append(byTotal[lf.version][lf.parts], lf)
			}
			continue
		}
		if v, ok := expiredLogExtra(fi.Key); ok {
			other = append(other, logFile{key: fi.Key, version: v})
		}
	}
	slices.SortFunc(commits, func(a, b logFile) int { return cmp.Compare(a.version, b.version) })

	// The newest commit not newer than the cutoff, with times made
	// monotonic: a clock that went back does not expire a later version.
	cutoffCommit := int64(-1)
	var last time.Time
	for _, c := range commits {
		ts := c.modTime
		if !ts.After(last) && !last.IsZero() {
			ts = last.Add(time.Millisecond)
		}
		last = ts
		if ts.After(res.Cutoff) {
			break
		}
		cutoffCommit = c.version
	}
	if cutoffCommit < 0 || len(commits) == 0 || commits[0].version >= cutoffCommit {
		return res, nil
	}
	// The newest usable checkpoint at or before it; a torn one is passed
	// over (its readers fall back to an older one, which must stay).
	var cands []int64
	for v := range byTotal {
		if v <= cutoffCommit && v > commits[0].version {
			cands = append(cands, v)
		}
	}
	slices.Sort(cands)
	slices.Reverse(cands)
	cp := int64(-1)
	for _, v := range cands {
		parts := completeCheckpoint(byTotal[v])
		if parts == nil {
			continue
		}
		if err := t.checkCheckpointUsable(ctx, parts); err != nil {
			t.log.Warn("delta_log_cleanup_checkpoint_unusable", "version", v, "error", err)
			continue
		}
		cp = v
		break
	}
	if cp < 0 {
		return res, nil
	}
	// Everything after the checkpoint must be there: cleanup never makes a
	// broken log worse.
	expect := cp + 1
	for _, c := range commits {
		if c.version < expect {
			continue
		}
		if c.version != expect {
			return res, fmt.Errorf("%w: commit %d is missing; log cleanup skipped", ErrCorruptLog, expect)
		}
		expect++
	}
	res.Checkpoint = cp
	var keys []string
	for _, c := range commits {
		if c.version < cp {
			keys = append(keys, c.key)
		}
	}
	for _, o := range other {
		if o.version < cp {
			keys = append(keys, o.key)
		}
	}
	slices.Sort(keys)
	n, err := deleteKeys(ctx, t.store, keys, 0)
	res.Deleted = keys
	if err != nil {
		return res, fmt.Errorf("delta: log cleanup: %d of %d files deleted: %w", n, len(keys), err)
	}
	return res, nil
}

// completeCheckpoint returns the files of a complete checkpoint among a
// version's checkpoint files (by number of parts), or nil.
func completeCheckpoint(byTotal map[int][]logFile) []logFile {
	if c := byTotal[0]; len(c) == 1 {
		return c
	}
	for total, files := range byTotal {
		if total > 0 && len(files) == total {
			slices.SortFunc(files, func(a, b logFile) int { return a.part - b.part })
			return files
		}
	}
	return nil
}

// checkCheckpointUsable reads a checkpoint as a reader would.
func (t *Table) checkCheckpointUsable(ctx context.Context, parts []logFile) error {
	acts, err := readCheckpoint(ctx, t.store, parts)
	if err != nil {
		return err
	}
	var proto, meta bool
	for _, a := range acts {
		if a.Other != nil {
			return errors.New("v2 checkpoint")
		}
		proto = proto || a.Protocol != nil
		meta = meta || a.MetaData != nil
	}
	if !proto || !meta {
		return errors.New("no protocol or metaData")
	}
	return nil
}

// expiredLogExtra recognises the log files other than commits and
// checkpoints that Metadata Cleanup deletes with their version:
// NNN.crc (version checksum) and NNN.MMM.compacted.json (log compaction,
// by its start version).
func expiredLogExtra(key string) (int64, bool) {
	name, ok := strings.CutPrefix(key, logDir)
	if !ok || len(name) < 21 || strings.Contains(name, "/") || name[20] != '.' {
		return 0, false
	}
	v, err := strconv.ParseInt(name[:20], 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	rest := name[21:]
	if rest == "crc" {
		return v, true
	}
	if end, ok := strings.CutSuffix(rest, ".compacted.json"); ok && len(end) == 20 {
		if _, err := strconv.ParseInt(end, 10, 64); err == nil {
			return v, true
		}
	}
	return 0, false
}

// cleanupAfterCheckpoint runs the log cleanup after a checkpoint of s was
// written; it never fails the commit.
func (t *Table) cleanupAfterCheckpoint(ctx context.Context, s *Snapshot) {
	res, err := t.cleanupExpiredLogs(ctx, s)
	if err != nil {
		t.log.Warn("delta_log_cleanup_failed", "version", s.version, "error", err)
		return
	}
	if len(res.Deleted) > 0 {
		t.log.Debug("delta_log_cleanup", "checkpoint", res.Checkpoint, "deleted", len(res.Deleted))
	}
}
