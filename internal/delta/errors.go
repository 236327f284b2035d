package delta

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotExist is returned by a Storage when a key does not exist.
	ErrNotExist = errors.New("delta: object does not exist")
	// ErrExist is returned by Storage.PutIfAbsent when the key already exists.
	ErrExist = errors.New("delta: object already exists")
	// ErrTableExists is returned by Create when the location already holds a
	// Delta log.
	ErrTableExists = errors.New("delta: table already exists")
	// ErrNotATable is returned by Open when the location holds no Delta log.
	ErrNotATable = errors.New("delta: no delta log at location")
	// ErrUnsupportedFeature is wrapped by errors about protocol versions or
	// table features this package does not implement; the message names them.
	ErrUnsupportedFeature = errors.New("delta: unsupported table feature")
	// ErrCorruptLog is wrapped by errors about log entries or checkpoints that
	// cannot be parsed or do not form a valid table state.
	ErrCorruptLog = errors.New("delta: corrupt log")
	// ErrVersionNotFound is returned by SnapshotAt for a version the log cannot
	// reconstruct (before the oldest checkpoint, or after the latest commit).
	ErrVersionNotFound = errors.New("delta: version not found")
	// ErrConstraint is wrapped by errors about rows violating a table invariant
	// or CHECK constraint, or a write the table's properties forbid.
	ErrConstraint = errors.New("delta: constraint violated")
	// ErrTooDeep is wrapped by the *SchemaError of a row whose values nest
	// deeper than a Parquet file can encode (255 definition or repetition
	// levels): a column of the evolved schema, or a value, too deep. With
	// AppendOptions.RejectBadRows such a row is rejected like any other
	// misfit; errors.Is(se, ErrTooDeep) tells it apart from a type conflict.
	ErrTooDeep = errors.New("delta: nested too deep")
	// ErrEncoding is wrapped by errors about a panic recovered inside the
	// Parquet encoder. For a row (a *SchemaError, rejected with
	// RejectBadRows) it means the row triggered a writer limit this package
	// does not check by itself; for a whole file it fails the Append.
	ErrEncoding = errors.New("delta: parquet encoder panicked")
	// ErrTxnRetention is wrapped by the error of an Append with Txns on a
	// table whose property delta.setTransactionRetentionDuration is set:
	// PROTOCOL.md lets such a table's transaction identifiers expire,
	// after which a writer would no longer find the offsets it committed
	// and would write them again. Reading the table, and appending without
	// Txns, stay allowed.
	ErrTxnRetention = errors.New("delta: transaction identifiers expire on this table (delta.setTransactionRetentionDuration)")
)

// propTxnRetention is the table property that lets txn identifiers expire.
const propTxnRetention = "delta.setTransactionRetentionDuration"

// SchemaError reports a value or type that does not fit the table schema.
// Row is the index of the offending row in the Append or CoerceRow input
// (-1 when the error is not about a row), Path the dotted column path.
type SchemaError struct {
	Row    int
	Path   string
	Reason string
	// Existing and Incoming name the two types of a type conflict; they are
	// empty when the error is not a conflict.
	Existing, Incoming string
	Err                error
}

func (e *SchemaError) Error() string {
	var b strings.Builder
	b.WriteString("delta: schema: ")
	if e.Row >= 0 {
		fmt.Fprintf(&b, "row %d: ", e.Row)
	}
	if e.Path != "" {
		fmt.Fprintf(&b, "column %q: ", e.Path)
	}
	if e.Existing != "" || e.Incoming != "" {
		fmt.Fprintf(&b, "type conflict: table has %s, value is %s", e.Existing, e.Incoming)
		if e.Reason != "" {
			b.WriteString(": " + e.Reason)
		}
	} else {
		b.WriteString(e.Reason)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *SchemaError) Unwrap() error { return e.Err }

// ConflictError reports a commit that lost a race against a concurrent commit
// it cannot be reconciled with: the winner changed the table's metadata or
// protocol, or recorded a txn for one of the same application ids. The table
// is unchanged by the losing Append; its data files are left unreferenced.
type ConflictError struct {
	// Version is the winning commit that conflicts.
	Version int64
	// Reason says what the winner changed.
	Reason string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("delta: concurrent commit %d conflicts: %s", e.Version, e.Reason)
}

func unsupported(what string, names ...string) error {
	return fmt.Errorf("%w: %s %s", ErrUnsupportedFeature, what, strings.Join(names, ", "))
}
