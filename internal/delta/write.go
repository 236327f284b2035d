package delta

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// 0 means DefaultMinRowsPerFile and a negative value never splits. See
	// Append for the rule.
	MinRowsPerFile int
	// RejectBadRows leaves out the rows that do not fit the schema (after
	// evolution, when SchemaEvolution is set) instead of failing the call:
	// Append checks every row once, commits the others and reports the
	// rejected ones in CommitResult.Rejected. See Append.
	RejectBadRows bool
	// Casts allow, per column, a conversion between JSON types that the
	// strict default refuses (see Cast): the key is the column path as
	// SchemaError.Path spells it ("event_type", "task.status",
	// "tags[]"), e.g. {"task_id": CastFromString} to store "32513" in a
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
	// Rejected lists, with AppendOptions.RejectBadRows, the rows left out
	// because they do not fit the schema: one *SchemaError per row, Row its
	// index in the input, in row order.
	Rejected []*SchemaError
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
func (t *Table) Append(ctx context.Context, rows []map[string]any, opts AppendOptions) (CommitResult, error) {
	snap, err := t.update(ctx)
	if err != nil {
		return CommitResult{}, err
	}
	if err := checkWritable(snap); err != nil {
		return CommitResult{}, err
	}
	if len(rows) == 0 && len(opts.Txns) == 0 {
		return CommitResult{Version: snap.version}, nil
	}
	if err := checkTxns(snap, opts.Txns, opts.RewindTxns); err != nil {
		return CommitResult{}, err
	}
	if err := checkCasts(snap.metadata.Schema, opts.Casts); err != nil {
		return CommitResult{}, err
	}

	// Rows are shredded against the current schema first: when they all fit,
	// schema evolution has nothing to add (evolveRow changes the schema only
	// for a row with a non-null key the schema lacks, which shredding
	// rejects), so the per-row evolution pass runs only on failure, and its
	// errors still come first.
	schema := snap.metadata.Schema
	minRows := opts.MinRowsPerFile
	if minRows == 0 {
		minRows = DefaultMinRowsPerFile
	}
	shred, err := t.shredRows(snap, schema, rows, minRows, opts.Casts)
	var rejected []*SchemaError
	switch {
	case err == nil:
	case opts.RejectBadRows && isSchemaError(err):
		var good []map[string]any
		schema, good, rejected, err = t.checkRows(snap, rows, opts.SchemaEvolution, opts.Casts)
		if err != nil {
			return CommitResult{}, err
		}
		if len(good) == 0 {
			if opts.BeforeCommit != nil {
				if err := opts.BeforeCommit(rejected); err != nil {
					return CommitResult{}, err
				}
			}
			return CommitResult{Version: snap.version, Rejected: rejected}, nil
		}
		shred, err = t.shredRows(snap, schema, good, minRows, opts.Casts)
		if err != nil {
			// checkRows shredded each good row against this schema.
			return CommitResult{}, fmt.Errorf("delta: rows checked one by one fail together: %w", err)
		}
	case opts.SchemaEvolution:
		order := declaredOrder(snap)
		// checkedWith[i] is the schema after row i's evolution: the
		// untypeable values it holds at keys that schema lacks are stored
		// as null, as by an Append of its own (see checkRows).
		checkedWith := make([]*StructType, len(rows))
		for i, r := range rows {
			ns, eerr := evolveRow(schema, r, order)
			if eerr == nil && ns != schema {
				eerr = checkLevels(ns)
			}
			if eerr != nil {
				return CommitResult{}, withRow(eerr, i)
			}
			schema = ns
			checkedWith[i] = ns
		}
		if schema != snap.metadata.Schema {
			copied := false
			for i, r := range rows {
				if checkedWith[i] == schema {
					continue
				}
				if nr, changed := dropUntypeable(checkedWith[i], r); changed {
					if !copied {
						rows, copied = slices.Clone(rows), true
					}
					rows[i] = nr
				}
			}
			shred, err = t.shredRows(snap, schema, rows, minRows, opts.Casts)
		}
	}
	if err != nil {
		return CommitResult{}, err
	}
	schemaChanged := schema != snap.metadata.Schema && !TypesEqual(schema, snap.metadata.Schema)

	files, err := t.writeDataFiles(ctx, shred)
	if err != nil {
		return CommitResult{}, err
	}
	if opts.Hooks.AfterDataFiles != nil {
		if err := opts.Hooks.AfterDataFiles(); err != nil {
			return CommitResult{}, err
		}
	}
	if opts.BeforeCommit != nil {
		if err := opts.BeforeCommit(rejected); err != nil {
			return CommitResult{}, err
		}
	}

	res := CommitResult{Files: len(files), SchemaChanged: schemaChanged, Rejected: rejected}
	for _, f := range files {
		res.Bytes += f.Size
		n, _ := f.NumRecords()
		res.Rows += n
	}
	var md *Metadata
	if schemaChanged {
		m := *snap.metadata
		m.Schema = schema
		m.SchemaString = schema.SchemaString()
		md = &m
	}
	op := opts.Operation
	if op == "" {
		op = "WRITE"
	}
	now := time.Now()
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
	entry, err := encodeLogEntry(acts)
	if err != nil {
		return CommitResult{}, err
	}

	base := snap
	version := snap.version + 1
	for attempt := 0; ; attempt++ {
		if attempt >= maxCommitAttempts {
			return CommitResult{}, fmt.Errorf("delta: commit gave up after %d concurrent commits", attempt)
		}
		err := t.store.PutIfAbsent(ctx, commitKey(version), entry)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrExist) {
			return CommitResult{}, fmt.Errorf("delta: committing version %d: %w", version, err)
		}
		// Lost the race: check the winner, then try the next version.
		next := base.clone()
		next.history = nil
		if err := t.applyWinner(ctx, next, version, opts.Txns); err != nil {
			return CommitResult{}, err
		}
		t.setLatest(next)
		base = next
		version++
	}
	ns := base.clone()
	ns.history = nil
	ns.apply(version, acts, now)
	t.setLatest(ns)
	res.Version = version
	t.maybeCheckpoint(ctx, ns)
	return res, nil
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

func isSchemaError(err error) bool {
	var se *SchemaError
	return errors.As(err, &se)
}

func withRow(err error, row int) error {
	var se *SchemaError
	if errors.As(err, &se) {
		c := *se
		c.Row = row
		return &c
	}
	return err
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

// declaredOrder is the table's declared top-level column order (property
// kpipe.columnOrder), used to place inferred columns.
func declaredOrder(s *Snapshot) []string {
	v, ok := s.config(propColumnOrder)
	if !ok || v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

type partGroup struct {
	values map[string]string
	// key is the grouping key of values (see groupChunk).
	key  string
	rows []int
}

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
	t.planMu.Lock()
	c := t.plan
	t.planMu.Unlock()
	if c != nil && c.schema == schema && c.numIdx == numIdx && slices.Equal(c.partCols, partCols) {
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
	plan, err := newWritePlan(data, numIdx)
	if err != nil {
		return nil, err
	}
	plan.setIgnore(ignore)
	t.planMu.Lock()
	t.plan = &cachedPlan{schema: schema, partCols: slices.Clone(partCols), numIdx: numIdx, plan: plan}
	t.planMu.Unlock()
	return plan, nil
}

// shredRows groups rows by partition, splits the groups into data files
// (see Append) and shreds the files in parallel, encoding them in memory as
// it goes. A row that does not fit fails the call with a *SchemaError
// naming the lowest such row, before anything is written to storage.
func (t *Table) shredRows(snap *Snapshot, schema *StructType, rows []map[string]any, minRowsPerFile int, casts map[string]Cast) (*shreddedRows, error) {
	if len(rows) == 0 {
		return &shreddedRows{}, nil
	}
	partCols := snap.metadata.PartitionColumns
	plan, err := t.writePlanFor(snap, schema)
	if err != nil {
		return nil, err
	}
	groups, present, err := groupRows(schema, partCols, rows, casts)
	if err != nil {
		return nil, err
	}
	files := splitGroups(groups, minRowsPerFile, runtime.GOMAXPROCS(0))
	sh := &shreddedRows{plan: plan, partCols: partCols, files: files}
	errs := make([]error, len(files))
	forEachGroup(len(files), func(fi int) {
		f := files[fi]
		f.enc = newFileEncoder(plan, len(f.rows))
		f.enc.casts = casts
		cur := -1
		defer func() {
			// A panic of the encoder is the current row's error, not a
			// crash of the process.
			if p := recover(); p != nil {
				errs[fi] = withRow(rowPanic(p), cur)
			}
		}()
		for _, i := range f.rows {
			cur = i
			// present[i] saves looking the partition keys up again.
			keys := -1
			if present != nil {
				keys = int(present[i])
			}
			if err := f.enc.addRow(rows[i], keys); err != nil {
				errs[fi] = withRow(err, i)
				return
			}
		}
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

// groupByPartition splits rows by their partition values, in order of
// first appearance.
func groupByPartition(schema *StructType, partCols []string, rows []map[string]any) ([]*partGroup, error) {
	groups, _, err := groupRows(schema, partCols, rows, nil)
	return groups, err
}

// groupChunkRows is the fewest rows one goroutine of groupRows groups.
const groupChunkRows = 2048

// groupRows is groupByPartition that also returns, when non-nil, how many
// of partCols each row has as keys (null or not), which shredding needs.
// Large inputs are grouped in parallel chunks and merged in order.
func groupRows(schema *StructType, partCols []string, rows []map[string]any, casts map[string]Cast) ([]*partGroup, []uint8, error) {
	fields := make([]*StructField, len(partCols))
	for i, pc := range partCols {
		if fields[i] = schema.Field(pc); fields[i] == nil {
			return nil, nil, fmt.Errorf("%w: partition column %q not in schema", ErrCorruptLog, pc)
		}
	}
	var present []uint8
	if len(partCols) <= math.MaxUint8 && !hasDuplicates(partCols) {
		present = make([]uint8, len(rows))
	}
	nchunks := min(runtime.GOMAXPROCS(0), len(rows)/groupChunkRows)
	if nchunks <= 1 {
		groups, err := groupChunk(fields, partCols, rows, 0, len(rows), present, casts)
		return groups, present, err
	}
	chunks := make([][]*partGroup, nchunks)
	errs := make([]error, nchunks)
	forEachGroup(nchunks, func(c int) {
		lo, hi := c*len(rows)/nchunks, (c+1)*len(rows)/nchunks
		chunks[c], errs[c] = groupChunk(fields, partCols, rows, lo, hi, present, casts)
	})
	// Chunks are in row order, so the first error is the lowest row's.
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	groups := chunks[0]
	byKey := make(map[string]*partGroup, len(groups))
	for _, g := range groups {
		byKey[g.key] = g
	}
	for _, cg := range chunks[1:] {
		for _, g := range cg {
			if m := byKey[g.key]; m != nil {
				m.rows = append(m.rows, g.rows...)
				continue
			}
			byKey[g.key] = g
			groups = append(groups, g)
		}
	}
	return groups, present, nil
}

func hasDuplicates(s []string) bool {
	for i, x := range s {
		if slices.Contains(s[i+1:], x) {
			return true
		}
	}
	return false
}

// groupChunk groups rows[lo:hi] in order of first appearance and records
// present[i] for each row (when present is non-nil).
func groupChunk(fields []*StructField, partCols []string, rows []map[string]any, lo, hi int, present []uint8, casts map[string]Cast) ([]*partGroup, error) {
	// A row's key is each partition value, length-prefixed (uvarint of
	// length+1; 0 for null), so no two distinct value lists share a key.
	var groups []*partGroup
	var last *partGroup
	byKey := map[string]*partGroup{}
	var key, val []byte
	// Each value is key[starts[j]:ends[j]]; starts[j] is -1 for null.
	starts := make([]int, len(partCols))
	ends := make([]int, len(partCols))
	for i := lo; i < hi; i++ {
		r := rows[i]
		key = key[:0]
		n := 0
		for j, pc := range partCols {
			f := fields[j]
			v, ok := r[pc]
			if ok {
				n++
			}
			if val, ok = appendPartitionKey(val[:0], f.Type, v); !ok {
				c, err := castValue(f.Type, v, pc, casts[pc])
				if err != nil {
					return nil, withRow(err, i)
				}
				if c == nil && !f.Nullable {
					return nil, &SchemaError{Row: i, Path: pc, Reason: "null in NOT NULL partition column"}
				}
				s, err := serializePartitionValue(f.Type, c)
				if err != nil {
					return nil, &SchemaError{Row: i, Path: pc, Reason: err.Error()}
				}
				if c == nil {
					starts[j] = -1
					key = append(key, 0)
					continue
				}
				val = append(val[:0], s...)
			}
			key = binary.AppendUvarint(key, uint64(len(val))+1)
			starts[j] = len(key)
			key = append(key, val...)
			ends[j] = len(key)
		}
		if present != nil {
			present[i] = uint8(n)
		}
		// Rows of a flush mostly arrive in time order: most belong to the
		// previous row's group, found without hashing the key.
		g := last
		if g == nil || g.key != string(key) {
			g = byKey[string(key)]
		}
		if g == nil {
			g = &partGroup{key: string(key)}
			if len(partCols) > 0 {
				g.values = make(map[string]string, len(partCols))
				for j, pc := range partCols {
					if starts[j] < 0 {
						g.values[pc] = "" // null
						continue
					}
					g.values[pc] = g.key[starts[j]:ends[j]]
				}
			}
			byKey[g.key] = g
			groups = append(groups, g)
		}
		g.rows = append(g.rows, i)
		last = g
	}
	return groups, nil
}

// appendPartitionKey appends the serialized partition value of v for the
// common cases (strings, integers), as serializePartitionValue would after
// coercion; false leaves the others (and every error) to that path.
func appendPartitionKey(b []byte, t DataType, v any) ([]byte, bool) {
	switch t {
	case TypeString:
		if s, ok := v.(string); ok {
			return append(b, s...), true
		}
	case TypeLong, TypeInteger, TypeShort, TypeByte:
		x, ok, err := toInt64(v)
		lo, hi := intRange(t.(PrimitiveType))
		if ok && err == nil && x >= lo && x <= hi {
			return strconv.AppendInt(b, x, 10), true
		}
	}
	return b, false
}

// forEachGroup runs fn for 0..n-1 on at most GOMAXPROCS goroutines.
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
		files[fi], keys[fi], errs[fi] = t.writeFile(ctx, sh.partCols, fi, sh.files[fi], ds)
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
func (t *Table) writeFile(ctx context.Context, partCols []string, idx int, f *dataFile, ds dirSyncer) (AddFile, string, error) {
	data, err := f.enc.encode()
	if err != nil {
		return AddFile{}, "", err
	}
	stats := f.enc.statsJSON()
	f.enc.release()
	f.enc = nil
	dirKey, dirPath := partitionDir(partCols, f.g.values)
	name := fmt.Sprintf("part-%05d-%s.c000.zstd.parquet", idx, newUUID())
	key := dirKey + name
	if ds != nil {
		err = ds.writeUnsynced(ctx, key, data)
	} else {
		err = t.store.Write(ctx, key, data)
	}
	if err != nil {
		return AddFile{}, "", fmt.Errorf("delta: writing data file: %w", err)
	}
	pv := f.g.values
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
