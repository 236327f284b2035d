package delta

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Hooks are test seams in the write path.
type Hooks struct {
	// AfterDataFiles runs after the data files of an Append are written and
	// before its log entry is committed. An error aborts the Append (the
	// files stay unreferenced), which simulates a crash at that point.
	AfterDataFiles func() error
}

// AppendOptions configures one Append.
type AppendOptions struct {
	// Txns are recorded in the same commit (txn actions), e.g. one per
	// source partition with the last offset written.
	Txns []Txn
	// SchemaEvolution lets rows add nested struct fields and new columns;
	// the new schema goes into the commit as a metaData action.
	SchemaEvolution bool
	// Operation is commitInfo.operation; default "WRITE".
	Operation string
	// MinRowsPerFile is the fewest rows a partition's file gets when its
	// rows are split across several files to encode them on several cores;
	// 0 means DefaultMinRowsPerFile (never splitting on a table whose
	// delta.autoOptimize.optimizeWrite is true) and a negative value never
	// splits. See Append for the rule.
	MinRowsPerFile int
	// RejectBadRows leaves out the rows that do not fit the schema (after
	// evolution, when SchemaEvolution is set) instead of failing the call:
	// Append checks every row once, commits the others and reports the
	// rejected ones in CommitResult.Rejected. See Append.
	RejectBadRows bool
	// StableMaps promises that no map in rows changes once given to
	// Append, in this call or later. Append may then shred a struct
	// column's map (a cached lookup result that many rows and flushes
	// share) once for all its calls and append the recorded values again
	// when the same map comes back; without it, once per call. A map
	// changed in place after a call would be written as it was.
	StableMaps bool
	// Casts allow, per column, a conversion between JSON types that the
	// strict default refuses (see Cast): the key is the column path as
	// SchemaError.Path spells it ("event_type", "task.status",
	// "tags[]"), e.g. {"task_id": CastFromString} to store "40001" in a
	// long column. A cast that cannot convert into its column's type (a
	// CastToString for a long column) fails the Append; a path the schema
	// does not have is ignored (the column may come later by evolution).
	Casts map[string]Cast
	// BeforeCommit, when set, is called once by every Append that commits
	// or rejects rows, after every row was checked and the data files were
	// written, before the log entry is committed, with the rejected rows
	// (CommitResult.Rejected's value; empty when none). It is where a
	// caller makes the records of rejected rows durable before the commit
	// that moves past them (its txn versions). If it returns an error,
	// Append commits nothing and returns that error; the data files stay
	// unreferenced, as after a crash.
	//
	// It is called before the first commit attempt only: an attempt that
	// loses the race against a concurrent blind append is retried at the
	// next version with the same files, rows and rejections, so the
	// records BeforeCommit made durable still describe it. When Append
	// fails after BeforeCommit returned (a *ConflictError, a storage
	// error), nothing was committed and the caller's retry calls it again
	// for the same rows: records published from it are at-least-once.
	// When every row is rejected it is called too, and then nothing is
	// committed at all (see Append).
	BeforeCommit func(rejected []*SchemaError) error
	// RewindTxns lets the txns of these application ids go to a version
	// not above the stored one, which is otherwise a *ConflictError: an
	// operator reset the source's offsets (a recreated topic starts again
	// at 0). The value is the stored version the caller read; if the table
	// holds another one (a concurrent writer moved it), the commit is a
	// *ConflictError, so a rewind never undoes another writer's progress.
	RewindTxns map[string]int64
	// CommitInfo entries are added to the commit's commitInfo action, under
	// keys of the caller's own (e.g. "kpipe.offsetReset"); keys the commit
	// sets itself keep their value.
	CommitInfo map[string]any
	Hooks      Hooks
}

// DefaultMinRowsPerFile is AppendOptions.MinRowsPerFile's default: a
// partition needs 8,192 rows before Append splits it in two files.
const DefaultMinRowsPerFile = 4096

// CommitResult describes a successful Append.
type CommitResult struct {
	Version int64
	Files   int
	Rows    int64
	Bytes   int64
	// SchemaChanged is true when the commit carried a new schema.
	SchemaChanged bool
	// Schema is the table's schema at Version: the evolved one when
	// SchemaChanged, else the one the rows were checked against (also when
	// nothing was committed). A caller that checks values before Append
	// (CoerceColumn) refreshes its copy from it.
	Schema *StructType
	// Rejected lists, with AppendOptions.RejectBadRows, the rows left out
	// because they do not fit the schema: one *SchemaError per row, Row its
	// index in the input, in row order.
	Rejected []*SchemaError
	// Added are the paths of the data files the commit added, as its add
	// actions name them (relative to the table, URL-encoded).
	Added []string
}

// maxCommitAttempts bounds the retries of one commit against concurrent
// blind appends.
const maxCommitAttempts = 10000

// Append writes rows to the table as one commit: Parquet files of each
// partition, then a log entry with the add actions, the txn actions of opts,
// a metaData action if the schema evolved, and commitInfo.
//
// A partition's rows go into one file, unless a flush holds fewer
// partitions than GOMAXPROCS: then a partition of R rows is split into
// k = min(R/MinRowsPerFile, GOMAXPROCS/partitions) files (when k ≥ 2) of
// consecutive rows, in order, so the files are encoded in parallel. Every
// file has at least MinRowsPerFile rows and its own stats; all go into the
// same commit.
//
// A row that does not fit the schema fails the whole call with a
// *SchemaError whose Row is the row's index, before anything is written.
// With opts.RejectBadRows, a failing batch is instead checked row by row in
// one pass: each row is evolved into the schema (when SchemaEvolution is
// set) and shredded on its own, a row that does not fit is rejected (and
// adds nothing to the schema), and the remaining rows are written and
// committed once; CommitResult.Rejected names the rejected rows. Rejection
// also happens before anything is written, so a rejected row never leaves a
// data file behind. When every row is rejected nothing is committed, not
// even opts.Txns: the result has the table's current version and Rows 0.
// A concurrent commit that only added files (or removed files with
// dataChange) and recorded other application ids is retried at the next
// version; one that changed metadata or protocol, or recorded one of
// opts.Txns' application ids, fails the call with *ConflictError. A txn
// whose version is not greater than the one already recorded fails with
// *ConflictError too. Empty rows with Txns commit the txns alone. On a
// table whose property delta.setTransactionRetentionDuration is set, any
// Txns fail the call with ErrTxnRetention (txn identifiers could expire).
//
// Errors that a later call may not meet again (storage outages, lost
// races) are those IsRetryable reports; the others will come back.
//
// A row may hold a *jsonx.RawObject (an object its decoder left undecoded)
// wherever it may hold a JSON object, map[string]any: as a struct column's
// value, inside a struct, array or map, or as a map column's value. The
// result (the files and their stats, the commit, rejections, schema
// evolution, errors) is exactly the one of the same rows with every
// RawObject materialized (jsonx.Materialize). The rows' struct columns are
// shredded from the RawObjects' bytes without building maps; a batch the
// fast path cannot write as the maps would be written (a key the schema
// lacks, a key given twice, a value that does not fit) is done again with
// the RawObjects materialized, in copies of the rows: Append never changes
// the caller's rows.
func (t *Table) Append(ctx context.Context, rows []map[string]any, opts AppendOptions) (CommitResult, error) {
	return t.appendIn(ctx, mapRows(rows), opts)
}

// appendIn is Append and AppendRows.
func (t *Table) appendIn(ctx context.Context, in inRows, opts AppendOptions) (CommitResult, error) {
	snap, err := t.update(ctx)
	if err != nil {
		return CommitResult{}, err
	}
	if err := checkWritable(snap); err != nil {
		return CommitResult{}, err
	}
	if in.len() == 0 && len(opts.Txns) == 0 {
		return CommitResult{Version: snap.version, Schema: snap.metadata.Schema}, nil
	}
	if err := checkTxns(snap, opts.Txns, opts.RewindTxns); err != nil {
		return CommitResult{}, err
	}
	if err := checkCasts(snap.metadata.Schema, opts.Casts); err != nil {
		return CommitResult{}, err
	}
	in, marked, err := fillIdentity(snap.metadata.Schema, in)
	if err != nil {
		return CommitResult{}, err
	}
	fit, err := t.fitRows(snap, in, opts)
	if err != nil {
		return CommitResult{}, err
	}
	if fit.shred == nil {
		// Every row was rejected: nothing is committed, not even the txns.
		if opts.BeforeCommit != nil {
			if err := opts.BeforeCommit(fit.rejected); err != nil {
				return CommitResult{}, err
			}
		}
		return CommitResult{Version: snap.version, Rejected: fit.rejected, Schema: snap.metadata.Schema}, nil
	}
	schemaChanged := fit.schema != snap.metadata.Schema && !TypesEqual(fit.schema, snap.metadata.Schema)
	if marked != snap.metadata.Schema && fit.shred != nil {
		// Identity values were generated: the high-water marks go into
		// the commit's metadata (write_identity.go).
		fit.schema, schemaChanged = withIdentityMarks(fit.schema, marked), true
	}

	files, err := t.writeDataFiles(ctx, fit.shred)
	if err != nil {
		return CommitResult{}, err
	}
	if opts.Hooks.AfterDataFiles != nil {
		if err := opts.Hooks.AfterDataFiles(); err != nil {
			return CommitResult{}, err
		}
	}
	if opts.BeforeCommit != nil {
		if err := opts.BeforeCommit(fit.rejected); err != nil {
			return CommitResult{}, err
		}
	}

	res := CommitResult{Files: len(files), SchemaChanged: schemaChanged, Rejected: fit.rejected}
	for _, f := range files {
		res.Added = append(res.Added, f.Path)
		res.Bytes += f.Size
		n, _ := f.NumRecords()
		res.Rows += n
	}
	var md *Metadata
	if schemaChanged {
		md = evolvedMetadata(snap, fit.schema)
	}
	now := time.Now()
	acts := appendActions(snap, opts, md, files, res, now)
	base, version, acts, err := t.commitActions(ctx, snap, acts, opts.Txns)
	if err != nil {
		return CommitResult{}, err
	}
	ns := base.clone()
	ns.history = nil
	ns.apply(version, acts, now)
	t.setLatest(ns)
	res.Version = version
	res.Schema = ns.metadata.Schema
	t.maybeCheckpoint(ctx, ns)
	t.maybeAutoCompact(ctx, ns, files)
	return res, nil
}

// appendActions are the actions of an Append's log entry: commitInfo (with
// opts.CommitInfo's own keys), the evolved metadata md if any, opts.Txns
// and the add actions of files.
func appendActions(snap *Snapshot, opts AppendOptions, md *Metadata, files []AddFile, res CommitResult, now time.Time) []action {
	op := opts.Operation
	if op == "" {
		op = "WRITE"
	}
	acts := []action{{CommitInfo: map[string]any{
		"timestamp": now.UnixMilli(),
		"operation": op,
		"operationParameters": map[string]any{
			"mode":        "Append",
			"partitionBy": jsonString(snap.metadata.PartitionColumns),
		},
		"readVersion":    snap.version,
		"isolationLevel": "Serializable",
		"isBlindAppend":  md == nil,
		"operationMetrics": map[string]string{
			"numFiles":       strconv.Itoa(len(files)),
			"numOutputRows":  strconv.FormatInt(res.Rows, 10),
			"numOutputBytes": strconv.FormatInt(res.Bytes, 10),
		},
		"engineInfo": EngineInfo(),
		"txnId":      newUUID(),
	}}}
	for k, v := range opts.CommitInfo {
		if _, set := acts[0].CommitInfo[k]; !set {
			acts[0].CommitInfo[k] = v
		}
	}
	if md != nil {
		acts = append(acts, action{MetaData: md})
	}
	for _, tx := range opts.Txns {
		tx := tx
		ms := now.UnixMilli()
		tx.LastUpdated = &ms
		acts = append(acts, action{Txn: &tx})
	}
	for i := range files {
		acts = append(acts, action{Add: &files[i]})
	}
	return acts
}

// commitActions commits acts as the version after snap, put-if-absent.
// A version a concurrent writer took first is checked (applyWinner) and
// the next one tried, up to maxCommitAttempts. It returns the snapshot the
// commit landed on (snap with the winners applied), its version, and the
// actions as committed: stampCommit recomputes, for every attempt, what
// depends on the version and the table before it (row ids, row commit
// versions, the in-commit timestamp).
func (t *Table) commitActions(ctx context.Context, snap *Snapshot, acts []action, txns []Txn) (*Snapshot, int64, []action, error) {
	base := snap
	version := snap.version + 1
	for attempt := 0; ; attempt++ {
		if attempt >= maxCommitAttempts {
			return nil, 0, nil, fmt.Errorf("delta: commit gave up after %d concurrent commits", attempt)
		}
		stamped, err := stampCommit(base, version, acts, time.Now())
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
		// Lost the race: check the winner, then try the next version.
		next := base.clone()
		next.history = nil
		if err := t.applyWinner(ctx, next, version, txns); err != nil {
			return nil, 0, nil, err
		}
		t.setLatest(next)
		base = next
		version++
	}
}

// applyWinner reads a concurrent commit and applies it to s, or returns a
// *ConflictError if an append cannot be reordered after it.
func (t *Table) applyWinner(ctx context.Context, s *Snapshot, version int64, txns []Txn) error {
	data, err := t.store.Read(ctx, commitKey(version))
	if err != nil {
		return fmt.Errorf("delta: reading concurrent commit %d: %w", version, err)
	}
	acts, err := parseLogEntry(data)
	if err != nil {
		return fmt.Errorf("delta: concurrent commit %d: %w", version, err)
	}
	for _, a := range acts {
		switch {
		case a.MetaData != nil:
			return &ConflictError{Version: version, Reason: "table metadata changed"}
		case a.Protocol != nil:
			return &ConflictError{Version: version, Reason: "table protocol changed"}
		case a.Txn != nil:
			for _, tx := range txns {
				if tx.AppID == a.Txn.AppID {
					return &ConflictError{Version: version, Reason: fmt.Sprintf("txn appId %q written concurrently (version %d)", tx.AppID, a.Txn.Version)}
				}
			}
		}
	}
	s.apply(version, acts, time.Now())
	return nil
}

func checkTxns(s *Snapshot, txns []Txn, rewind map[string]int64) error {
	if len(txns) > 0 {
		if v, ok := s.config(propTxnRetention); ok {
			return fmt.Errorf("%w: table property %s is %q: txn actions recorded now could expire, and exactly-once with them", ErrTxnRetention, propTxnRetention, v)
		}
	}
	seen := map[string]bool{}
	for _, tx := range txns {
		if tx.AppID == "" {
			return fmt.Errorf("delta: txn with empty appId")
		}
		if seen[tx.AppID] {
			return fmt.Errorf("delta: txn appId %q given twice", tx.AppID)
		}
		seen[tx.AppID] = true
		v, ok := s.TxnVersion(tx.AppID)
		if want, rw := rewind[tx.AppID]; rw {
			if ok && v != want {
				return &ConflictError{Version: s.version, Reason: fmt.Sprintf("txn appId %q at version %d, not the %d its rewind expects", tx.AppID, v, want)}
			}
			continue
		}
		if ok && tx.Version <= v {
			return &ConflictError{Version: s.version, Reason: fmt.Sprintf("txn appId %q already at version %d (writing %d)", tx.AppID, v, tx.Version)}
		}
	}
	return nil
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
