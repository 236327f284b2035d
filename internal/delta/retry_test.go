package delta

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A table whose txn identifiers may expire is refused for txn writes, with
// an error naming the property; reading it and appending without txns
// stay allowed.
func TestTxnWritesRefusedWithTxnRetention(t *testing.T) {
	tb, store := castTable(t, map[string]string{propTxnRetention: "interval 7 days"})
	row := []map[string]any{{"id": "a", "p": int64(1)}}
	for _, rows := range [][]map[string]any{row, nil} {
		_, err := tb.Append(t.Context(), rows, AppendOptions{Txns: []Txn{{AppID: "w-t-0", Version: 1}}})
		if !errors.Is(err, ErrTxnRetention) || !contains(err.Error(), propTxnRetention) {
			t.Fatalf("%d rows with txns: got %v, want ErrTxnRetention naming %s", len(rows), err, propTxnRetention)
		}
		if IsRetryable(err) {
			t.Fatalf("%v is retryable", err)
		}
	}
	snap0, _ := tb.Snapshot(t.Context())
	if err := snap0.CheckAppend(true); !errors.Is(err, ErrTxnRetention) {
		t.Fatalf("CheckAppend(true) = %v, want ErrTxnRetention", err)
	}
	if err := snap0.CheckAppend(false); err != nil {
		t.Fatalf("CheckAppend(false) = %v", err)
	}
	res, err := tb.Append(t.Context(), row, AppendOptions{})
	if err != nil || res.Version != 1 {
		t.Fatalf("append without txns: %+v, %v", res, err)
	}
	other, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := other.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := ReadRows(t.Context(), store, snap); err != nil || len(rows) != 1 {
		t.Fatalf("read %d rows, %v", len(rows), err)
	}
	if _, ok := snap.TxnVersion("w-t-0"); ok {
		t.Fatal("a refused txn was recorded")
	}
}

func TestIsRetryable(t *testing.T) {
	// Real failures, not made-up values: a dial to a closed port and a
	// read past its deadline.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, dialErr := net.Dial("tcp", addr)
	if dialErr == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	_ = r.SetReadDeadline(time.Now().Add(-time.Second))
	_, deadlineErr := r.Read(make([]byte, 1))
	// A folder where the table wants a file: ENOTDIR, a fault of the
	// location that a retry does not fix.
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "_delta_log"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := NewLocalStorage(root)
	if err != nil {
		t.Fatal(err)
	}
	notDirErr := store.Write(t.Context(), "_delta_log/00000000000000000000.json", []byte("{}"))
	if notDirErr == nil {
		t.Fatal("write under a file succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	canceledErr := store.Write(ctx, "a", nil)

	pathErr := func(e syscall.Errno) error {
		return fmt.Errorf("delta: writing data file: %w", &fs.PathError{Op: "write", Path: "part-0.parquet", Err: e})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", fmt.Errorf("delta: committing version 3: %w", dialErr), true},
		{"read deadline", deadlineErr, true},
		{"context deadline", fmt.Errorf("delta: reading: %w", context.DeadlineExceeded), true},
		{"EIO", pathErr(syscall.EIO), true},
		{"ENOSPC", pathErr(syscall.ENOSPC), true},
		{"EACCES", pathErr(syscall.EACCES), true},
		{"EROFS", pathErr(syscall.EROFS), true},
		{"ETIMEDOUT", pathErr(syscall.ETIMEDOUT), true},
		{"HTTP 503", statusErr(503), true},
		{"HTTP 429", statusErr(429), true},
		{"S3 SlowDown", codeErr("SlowDown"), true},
		{"S3 ConditionalRequestConflict", codeErr("ConditionalRequestConflict"), true},
		{"concurrent commit", &ConflictError{Version: 4, Reason: "metadata changed"}, true},
		{"ENOTDIR", notDirErr, false},
		{"canceled", canceledErr, false},
		{"HTTP 403", statusErr(403), false},
		{"S3 NoSuchBucket", codeErr("NoSuchBucket"), false},
		{"unsupported feature", unsupported("writer features", "variantType"), false},
		{"corrupt log", fmt.Errorf("%w: version 3: bad JSON", ErrCorruptLog), false},
		{"corrupt log from an I/O error", fmt.Errorf("%w: checkpoint: %w", ErrCorruptLog, pathErr(syscall.EIO)), false},
		{"not a table", ErrNotATable, false},
		{"schema", &SchemaError{Row: 1, Path: "x", Reason: "no"}, false},
		{"too deep", &SchemaError{Row: 1, Path: "x", Err: ErrTooDeep}, false},
		{"txn retention", fmt.Errorf("%w: x", ErrTxnRetention), false},
		{"plain", errors.New("delta: txn with empty appId"), false},
	} {
		if got := IsRetryable(tc.err); got != tc.want {
			t.Errorf("%s: IsRetryable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// A table with a feature this package does not implement is refused, and
// the refusal is not retryable: the worker stops with the feature's name.
func TestUnsupportedFeatureIsNotRetryable(t *testing.T) {
	root := t.TempDir()
	store, err := NewLocalStorage(root)
	if err != nil {
		t.Fatal(err)
	}
	entry := `{"protocol":{"minReaderVersion":1,"minWriterVersion":7,"writerFeatures":["futureFeature"]}}` + "\n" +
		`{"metaData":{"id":"t","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"a\",\"type\":\"long\",\"nullable\":true,\"metadata\":{}}]}","partitionColumns":[],"configuration":{},"createdTime":1}}` + "\n"
	if err := store.PutIfAbsent(t.Context(), commitKey(0), []byte(entry)); err != nil {
		t.Fatal(err)
	}
	// A writer feature only: the table opens and reads, and is refused for
	// writing.
	tb, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	{
		snap, _ := tb.Snapshot(t.Context())
		if cerr := snap.CheckAppend(false); !errors.Is(cerr, ErrUnsupportedFeature) {
			t.Fatalf("CheckAppend = %v, want ErrUnsupportedFeature", cerr)
		}
		_, err = tb.Append(t.Context(), []map[string]any{{"a": int64(1)}}, AppendOptions{})
	}
	if !errors.Is(err, ErrUnsupportedFeature) || !contains(err.Error(), "futureFeature") || IsRetryable(err) {
		t.Fatalf("got %v (retryable %v), want a non-retryable ErrUnsupportedFeature naming futureFeature", err, IsRetryable(err))
	}
	// A corrupt log entry: not retryable either.
	if err := store.PutIfAbsent(t.Context(), commitKey(1), []byte("{not json\n")); err != nil {
		t.Fatal(err)
	}
	store2, _ := NewLocalStorage(t.TempDir())
	good := `{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}` + "\n" +
		`{"metaData":{"id":"t","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"a\",\"type\":\"long\",\"nullable\":true,\"metadata\":{}}]}","partitionColumns":[],"configuration":{},"createdTime":1}}` + "\n"
	_ = store2.PutIfAbsent(t.Context(), commitKey(0), []byte(good))
	_ = store2.PutIfAbsent(t.Context(), commitKey(1), []byte("{not json\n"))
	_, err = Open(t.Context(), store2)
	if !errors.Is(err, ErrCorruptLog) || IsRetryable(err) {
		t.Fatalf("corrupt log: got %v (retryable %v), want a non-retryable ErrCorruptLog", err, IsRetryable(err))
	}
}

type statusErr int

func (e statusErr) Error() string       { return fmt.Sprintf("http status %d", int(e)) }
func (e statusErr) HTTPStatusCode() int { return int(e) }

type codeErr string

func (e codeErr) Error() string     { return "api error " + string(e) }
func (e codeErr) ErrorCode() string { return string(e) }
