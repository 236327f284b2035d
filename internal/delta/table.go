package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// Version is the kpipe version. It appears in commitInfo.engineInfo as
// "kpipe/<Version>". A build may set it (-ldflags "-X
// kpipe/internal/delta.Version=1.2.3"); otherwise it comes from the
// binary's build info (see BuildVersion).
var Version = ""

func init() {
	if Version == "" {
		Version = BuildVersion()
	}
}

// BuildVersion is the version the Go toolchain recorded in the binary: the
// module version of "go install kpipe@v1.2.3", else "dev+" and the first 12
// hex digits of the VCS commit it was built from ("-dirty" when the tree
// had changes), else "dev".
func BuildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	return "dev+" + rev[:min(len(rev), 12)] + dirty
}

// EngineInfo returns the engineInfo written into every commit.
func EngineInfo() string { return "kpipe/" + Version }

// Option configures Open and Create.
type Option func(*options)

type options struct {
	logger             *slog.Logger
	checkpointInterval int // 0: table property or 10
	asyncCheckpoints   bool
	now                func() time.Time // nil: time.Now (WithClock)
	autoCompact        AutoCompact
}

// WithLogger sets the logger for background events (checkpoint failures,
// fallbacks from a corrupt _last_checkpoint). The default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithCheckpointInterval overrides the table's delta.checkpointInterval.
func WithCheckpointInterval(n int) Option { return func(o *options) { o.checkpointInterval = n } }

// WithSyncCheckpoints makes Append write a due checkpoint before returning
// instead of in the background (the commit itself is never delayed by it
// failing). Useful in tests and one-shot tools.
func WithSyncCheckpoints() Option { return func(o *options) { o.asyncCheckpoints = false } }

// Table is an open Delta table. It caches the latest snapshot and is safe for
// concurrent use; concurrent Appends from one or many processes are
// serialised by the log's put-if-absent commits.
type Table struct {
	store Storage
	opts  options
	log   *slog.Logger

	mu     sync.Mutex
	latest *Snapshot

	ckptMu      sync.Mutex
	ckptRunning bool
	ckptRetry   bool
	// ckptLast is the newest version this Table started a checkpoint of.
	ckptLast int64
	ckptWG   sync.WaitGroup

	planMu sync.Mutex
	plan   *cachedPlan

	ac autoCompactor
}

// Open opens the table at store and loads its latest snapshot. A location
// without a Delta log fails with ErrNotATable.
func Open(ctx context.Context, store Storage, opts ...Option) (*Table, error) {
	t := newTable(store, opts)
	snap, err := readable(t.load(ctx, -1))
	if err != nil {
		return nil, err
	}
	t.latest = snap
	return t, nil
}

func newTable(store Storage, opts []Option) *Table {
	o := options{asyncCheckpoints: true}
	for _, fn := range opts {
		fn(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return &Table{store: store, opts: o, log: o.logger}
}

// Storage returns the table's storage.
func (t *Table) Storage() Storage { return t.store }

// Snapshot returns the latest snapshot, reading any commits made since the
// last call.
func (t *Table) Snapshot(ctx context.Context) (*Snapshot, error) {
	return readable(t.update(ctx))
}

// readable passes on a snapshot this package can read, else the error of
// checkReadable: Open, Snapshot and SnapshotAt refuse a table whose
// protocol or features are not implemented, naming them.
func readable(s *Snapshot, err error) (*Snapshot, error) {
	if err != nil {
		return nil, err
	}
	if err := checkReadable(s); err != nil {
		return nil, err
	}
	return s, nil
}

// SnapshotAt returns the snapshot at version v (time travel).
func (t *Table) SnapshotAt(ctx context.Context, v int64) (*Snapshot, error) {
	if v < 0 {
		return nil, fmt.Errorf("%w: %d", ErrVersionNotFound, v)
	}
	return readable(t.load(ctx, v))
}

// Close waits for background checkpoints to finish, and cancels a running
// auto-compaction and waits for it (see AutoCompact).
func (t *Table) Close(ctx context.Context) error {
	t.stopAutoCompact()
	done := make(chan struct{})
	go func() { t.ckptWG.Wait(); t.waitAutoCompact(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *Table) cached() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.latest
}

// setLatest records s as the latest snapshot if it is newer.
func (t *Table) setLatest(s *Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.latest == nil || s.version > t.latest.version {
		t.latest = s
	}
}

// update brings the cached snapshot up to the newest commit in the log.
func (t *Table) update(ctx context.Context) (*Snapshot, error) {
	cur := t.cached()
	if cur == nil {
		s, err := t.load(ctx, -1)
		if err != nil {
			return nil, err
		}
		t.setLatest(s)
		return s, nil
	}
	commits, err := t.listCommits(ctx, cur.version+1)
	if err != nil {
		return nil, err
	}
	if len(commits) == 0 {
		return cur, nil
	}
	if commits[0].version != cur.version+1 {
		s, err := t.load(ctx, -1)
		if err != nil {
			return nil, err
		}
		t.setLatest(s)
		return t.cached(), nil
	}
	next := cur.clone()
	next.history = nil
	for i, c := range commits {
		if c.version != cur.version+1+int64(i) {
			return nil, fmt.Errorf("%w: missing commit %d", ErrCorruptLog, cur.version+1+int64(i))
		}
		if err := t.applyCommit(ctx, next, c); err != nil {
			return nil, err
		}
	}
	t.setLatest(next)
	return t.cached(), nil
}

// listCommits lists the commits from version from on. A listing that skips
// a version is read again: a commit exists only once the one before it does,
// so a gap means the listing raced with concurrent commits (a local folder is
// read in several system calls); a gap that persists is left to the caller.
func (t *Table) listCommits(ctx context.Context, from int64) ([]logFile, error) {
	var commits []logFile
	for attempt := 0; ; attempt++ {
		list, err := t.store.List(ctx, logDir, fmt.Sprintf("%s%020d", logDir, from))
		if err != nil {
			return nil, err
		}
		commits = commits[:0]
		for _, fi := range list {
			if lf, ok := parseLogFileName(fi.Key); ok && lf.kind == logCommit {
				lf.size, lf.modTime = fi.Size, fi.ModTime
				commits = append(commits, lf)
			}
		}
		gap := false
		for i := 1; i < len(commits); i++ {
			if commits[i].version != commits[i-1].version+1 {
				gap = true
				break
			}
		}
		if !gap || attempt == 2 {
			return commits, nil
		}
	}
}

func (t *Table) applyCommit(ctx context.Context, s *Snapshot, c logFile) error {
	data, err := t.store.Read(ctx, c.key)
	if err != nil {
		return fmt.Errorf("reading commit %d: %w", c.version, err)
	}
	acts, err := parseLogEntry(data)
	if err != nil {
		return fmt.Errorf("commit %d: %w", c.version, err)
	}
	s.apply(c.version, acts, timeOfFile(c))
	return nil
}

// lastCheckpointHint is the part of _last_checkpoint this package uses.
type lastCheckpointHint struct {
	Version int64 `json:"version"`
	Size    int64 `json:"size"`
	Parts   *int  `json:"parts,omitempty"`
}

func (t *Table) readLastCheckpoint(ctx context.Context) (lastCheckpointHint, bool) {
	data, err := t.store.Read(ctx, lastCheckpointKey)
	if err != nil {
		if !errors.Is(err, ErrNotExist) {
			t.log.Warn("delta_last_checkpoint_unreadable", "error", err)
		}
		return lastCheckpointHint{}, false
	}
	var h lastCheckpointHint
	if err := json.Unmarshal(data, &h); err != nil || h.Version < 0 {
		t.log.Warn("delta_last_checkpoint_corrupt", "error", err)
		return lastCheckpointHint{}, false
	}
	return h, true
}

// logListing is the parsed content of a _delta_log listing.
type logListing struct {
	commits     map[int64]logFile
	checkpoints map[int64][]logFile // complete checkpoints only
	maxCommit   int64
}

func (t *Table) listLog(ctx context.Context, fromVersion int64) (logListing, error) {
	start := logDir
	if fromVersion > 0 {
		start = fmt.Sprintf("%s%020d", logDir, fromVersion)
	}
	list, err := t.store.List(ctx, logDir, start)
	if err != nil {
		return logListing{}, err
	}
	l := logListing{commits: map[int64]logFile{}, checkpoints: map[int64][]logFile{}, maxCommit: -1}
	parts := map[int64]map[int][]logFile{} // version -> total parts -> files
	for _, fi := range list {
		lf, ok := parseLogFileName(fi.Key)
		if !ok {
			continue
		}
		lf.size, lf.modTime = fi.Size, fi.ModTime
		switch lf.kind {
		case logCommit:
			l.commits[lf.version] = lf
			l.maxCommit = max(l.maxCommit, lf.version)
		case logCheckpoint:
			if parts[lf.version] == nil {
				parts[lf.version] = map[int][]logFile{}
			}
			parts[lf.version][lf.parts] = append(parts[lf.version][lf.parts], lf)
		}
	}
	for v, byTotal := range parts {
		if c := byTotal[0]; len(c) > 0 {
			// Classic and UUID-named checkpoints of one version hold the
			// same state: take the classic one, else the first by name.
			slices.SortFunc(c, func(a, b logFile) int {
				switch {
				case a.uuid && !b.uuid:
					return 1
				case b.uuid && !a.uuid:
					return -1
				}
				return strings.Compare(a.key, b.key)
			})
			l.checkpoints[v] = c[:1]
			continue
		}
		for total, files := range byTotal {
			if total == 0 || len(files) != total {
				continue
			}
			slices.SortFunc(files, func(a, b logFile) int { return a.part - b.part })
			l.checkpoints[v] = files
			break
		}
	}
	return l, nil
}

// load reconstructs the snapshot at version target (-1: latest).
func (t *Table) load(ctx context.Context, target int64) (*Snapshot, error) {
	hint, ok := t.readLastCheckpoint(ctx)
	if ok && (target < 0 || hint.Version <= target) {
		l, err := t.listLog(ctx, hint.Version)
		if err != nil {
			return nil, err
		}
		if _, found := l.checkpoints[hint.Version]; found {
			s, err := t.replay(ctx, l, target, true)
			if err == nil {
				return s, nil
			}
			var ice *incompleteCheckpointError
			if errors.Is(err, ErrUnsupportedFeature) || errors.As(err, &ice) || ctx.Err() != nil {
				return nil, err
			}
			t.log.Warn("delta_replay_from_hint_failed", "version", hint.Version, "error", err)
		} else {
			t.log.Warn("delta_last_checkpoint_stale", "version", hint.Version)
		}
	}
	l, err := t.listLog(ctx, 0)
	if err != nil {
		return nil, err
	}
	return t.replay(ctx, l, target, false)
}

// replay builds a snapshot from a listing: the newest usable checkpoint at
// or before the target, then the commits after it.
func (t *Table) replay(ctx context.Context, l logListing, target int64, partial bool) (*Snapshot, error) {
	end := target
	if end < 0 {
		end = l.maxCommit
		for v := range l.checkpoints {
			end = max(end, v)
		}
		if end < 0 {
			return nil, fmt.Errorf("%w: %s", ErrNotATable, t.store.Location())
		}
	} else if _, ok := l.commits[end]; !ok {
		if _, ok := l.checkpoints[end]; !ok {
			if len(l.commits) == 0 && len(l.checkpoints) == 0 {
				return nil, fmt.Errorf("%w: %s", ErrNotATable, t.store.Location())
			}
			return nil, fmt.Errorf("%w: %d (latest is %d)", ErrVersionNotFound, end, l.maxCommit)
		}
	}
	lastCkpt := int64(-1)
	var cands []int64
	for v := range l.checkpoints {
		lastCkpt = max(lastCkpt, v)
		if v <= end {
			cands = append(cands, v)
		}
	}
	slices.Sort(cands)
	slices.Reverse(cands)
	var firstErr error
	for _, cv := range cands {
		s, err := t.replayFrom(ctx, l, cv, end)
		if err == nil {
			s.lastCheckpoint = lastCkpt
			return s, nil
		}
		var ice *incompleteCheckpointError
		if errors.Is(err, ErrUnsupportedFeature) || errors.As(err, &ice) || ctx.Err() != nil {
			return nil, err
		}
		t.log.Warn("delta_checkpoint_unusable", "version", cv, "error", err)
		if firstErr == nil {
			firstErr = err
		}
	}
	if partial {
		if firstErr == nil {
			firstErr = fmt.Errorf("%w: no usable checkpoint", ErrCorruptLog)
		}
		return nil, firstErr
	}
	if _, ok := l.commits[0]; !ok {
		if firstErr != nil {
			return nil, firstErr
		}
		return nil, fmt.Errorf("%w: version 0 missing and no checkpoint at or before %d", ErrVersionNotFound, end)
	}
	s, err := t.replayFrom(ctx, l, -1, end)
	if err != nil {
		return nil, err
	}
	s.lastCheckpoint = lastCkpt
	return s, nil
}

func (t *Table) replayFrom(ctx context.Context, l logListing, cv, end int64) (*Snapshot, error) {
	s := newEmptySnapshot()
	if cv >= 0 {
		acts, err := readCheckpoint(ctx, t.store, l.checkpoints[cv])
		if err != nil {
			return nil, err
		}
		s.apply(cv, acts, timeOfFile(l.checkpoints[cv][0]))
		s.history = nil
		s.checkpointVersion = cv
		if s.protocol == nil || s.metadata == nil {
			return nil, &incompleteCheckpointError{version: cv}
		}
		if c, ok := l.commits[cv]; ok {
			// The checkpoint's own commit supplies its commitInfo/timestamp.
			if data, err := t.store.Read(ctx, c.key); err == nil {
				if acts, err := parseLogEntry(data); err == nil {
					for _, a := range acts {
						if a.CommitInfo != nil {
							s.timestamp = commitInfoOf(cv, a.CommitInfo, s.timestamp).Timestamp
						}
					}
				}
			}
		}
	}
	for v := cv + 1; v <= end; v++ {
		c, ok := l.commits[v]
		if !ok {
			return nil, fmt.Errorf("%w: commit %d is missing (log versions are not contiguous)", ErrCorruptLog, v)
		}
		if err := t.applyCommit(ctx, s, c); err != nil {
			return nil, err
		}
	}
	if s.protocol == nil {
		return nil, fmt.Errorf("%w: no protocol action at version %d", ErrCorruptLog, end)
	}
	if s.metadata == nil {
		return nil, fmt.Errorf("%w: no metaData action at version %d", ErrCorruptLog, end)
	}
	return s, nil
}

// History reads the commitInfo of the newest commits in the log (all when
// limit <= 0), newest first.
func (t *Table) History(ctx context.Context, limit int) ([]CommitInfo, error) {
	l, err := t.listLog(ctx, 0)
	if err != nil {
		return nil, err
	}
	versions := make([]int64, 0, len(l.commits))
	for v := range l.commits {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	slices.Reverse(versions)
	if limit > 0 && len(versions) > limit {
		versions = versions[:limit]
	}
	out := make([]CommitInfo, 0, len(versions))
	for _, v := range versions {
		c := l.commits[v]
		data, err := t.store.Read(ctx, c.key)
		if err != nil {
			return nil, err
		}
		acts, err := parseLogEntry(data)
		if err != nil {
			return nil, fmt.Errorf("commit %d: %w", v, err)
		}
		var ci map[string]any
		for _, a := range acts {
			if a.CommitInfo != nil {
				ci = a.CommitInfo
			}
		}
		out = append(out, commitInfoOf(v, ci, timeOfFile(c)))
	}
	return out, nil
}

func isLogKey(k string) bool { return strings.HasPrefix(k, logDir) }

// incompleteCheckpointError is a checkpoint that parses but lacks the
// protocol or metadata: the log is corrupt, and falling back to older state
// would hide it.
type incompleteCheckpointError struct{ version int64 }

func (e *incompleteCheckpointError) Error() string {
	return fmt.Sprintf("%v: checkpoint %d lacks protocol or metadata", ErrCorruptLog, e.version)
}

func (e *incompleteCheckpointError) Unwrap() error { return ErrCorruptLog }
