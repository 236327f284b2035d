package delta

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"

	"github.com/aws/smithy-go"
)

// IsRetryable reports whether err, from any call of this package, is a
// failure that the same call may not meet again: a storage outage, a slow
// or unreachable store, a race lost against another writer. A worker
// retries those with backoff and keeps its offsets; anything else (a table
// it must not write, a corrupt log, a bad row, a caller's mistake) stops
// it, because retrying would meet the same error forever.
//
// It is an allow-list. Retryable are, anywhere in err's chain:
//
//   - os.ErrDeadlineExceeded and context.DeadlineExceeded: a storage call
//     that timed out (context.Canceled is not: the caller is stopping);
//   - these syscall errors of the file system or network: EIO (disk or
//     NFS I/O error), ENOSPC and EDQUOT (full; space may be freed), EROFS
//     (a file system remounted read-only after an error), EACCES and EPERM
//     (permissions an operator can fix without losing data), EAGAIN, EINTR,
//     EBUSY, ENOLCK, EMFILE and ENFILE (resources short for now), ESTALE
//     (NFS handle), ETIMEDOUT, ECONNREFUSED, ECONNRESET, ECONNABORTED,
//     EPIPE, ENETDOWN, ENETUNREACH, ENETRESET, EHOSTDOWN and EHOSTUNREACH;
//   - a *net.OpError or *net.DNSError (a failed dial, read or write of an
//     object store's connection, a DNS lookup), and any net.Error that
//     timed out;
//   - io.EOF or io.ErrUnexpectedEOF inside a *url.Error (an HTTP
//     request whose connection the server or a proxy closed before or
//     during the response; S3Storage wraps an object's body cut short in
//     one too) or a *smithy.DeserializationError (an AWS SDK response
//     body cut short);
//   - an error with HTTPStatusCode() int of 500, 502, 503 or 504 (server
//     trouble), 429 (throttled) or 408 (request timeout), or with
//     ErrorCode() string of an S3 throttling or timeout code (SlowDown,
//     Throttling, ThrottlingException, RequestTimeout,
//     RequestTimeTooSkewed, InternalError, ServiceUnavailable) or
//     ConditionalRequestConflict (a conditional write of the same key in
//     flight, which S3 asks to retry), as the AWS SDK's errors expose them;
//   - a *ConflictError: a concurrent commit changed the table's metadata
//     or recorded one of the same txns; a new Append starts from the new
//     snapshot (and a caller that filters rows by the stored txn versions
//     first, as the pipeline does, then writes only what is missing).
//
// Never retryable, even when they wrap one of the above: ErrUnsupportedFeature,
// ErrCorruptLog, ErrNotATable, ErrTableExists, ErrVersionNotFound,
// ErrConstraint, ErrTxnRetention, ErrTooDeep, ErrEncoding, a *SchemaError,
// and context.Canceled.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	for _, fatal := range []error{ErrUnsupportedFeature, ErrCorruptLog, ErrNotATable, ErrTableExists, ErrVersionNotFound, ErrConstraint, ErrTxnRetention, ErrTooDeep, ErrEncoding, context.Canceled} {
		if errors.Is(err, fatal) {
			return false
		}
	}
	var se *SchemaError
	if errors.As(err, &se) {
		return false
	}
	var ce *ConflictError
	if errors.As(err, &ce) {
		return true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// Network errors first: a *net.OpError wraps the syscall error of a
	// dial or read, and every one of them is worth another try.
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) && (errors.Is(ue.Err, io.EOF) || errors.Is(ue.Err, io.ErrUnexpectedEOF)) {
		return true
	}
	var dse *smithy.DeserializationError
	if errors.As(err, &dse) && (errors.Is(dse.Err, io.EOF) || errors.Is(dse.Err, io.ErrUnexpectedEOF)) {
		return true
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EIO, syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM,
			syscall.EAGAIN, syscall.EINTR, syscall.EBUSY, syscall.ENOLCK, syscall.EMFILE, syscall.ENFILE, syscall.ESTALE,
			syscall.ETIMEDOUT, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
			syscall.ENETDOWN, syscall.ENETUNREACH, syscall.ENETRESET, syscall.EHOSTDOWN, syscall.EHOSTUNREACH:
			return true
		}
		// Any other errno (ENOTDIR, EINVAL, ...) is a fault of the
		// location or the call, which a retry does not fix.
		return false
	}
	// Other network errors that time out (syscall.Errno is a net.Error
	// too, hence after it).
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) {
		switch hs.HTTPStatusCode() {
		case 408, 429, 500, 502, 503, 504:
			return true
		}
	}
	var ec interface{ ErrorCode() string }
	if errors.As(err, &ec) {
		switch ec.ErrorCode() {
		case "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "ConditionalRequestConflict":
			return true
		}
	}
	return false
}
