package delta

import (
	"fmt"
	"io"
	"net/url"
	"testing"

	"github.com/aws/smithy-go"
)

// A connection closed before or during an HTTP response is retryable; an
// EOF that is no network failure (a file cut short) is not.
func TestIsRetryableClosedConnections(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"EOF of a request", fmt.Errorf("delta: reading k: %w", &url.Error{Op: "Get", URL: "http://s3/k", Err: io.EOF}), true},
		{"body cut short", fmt.Errorf("delta: reading k: %w", &url.Error{Op: "Get", URL: "s3://b/k", Err: io.ErrUnexpectedEOF}), true},
		{"listing cut short", fmt.Errorf("delta: listing: %w", &smithy.DeserializationError{Err: fmt.Errorf("failed to decode response body, %w", io.ErrUnexpectedEOF)}), true},
		{"listing not XML", fmt.Errorf("delta: listing: %w", &smithy.DeserializationError{Err: fmt.Errorf("unexpected element")}), false},
		{"URL error of a bad scheme", &url.Error{Op: "Get", URL: "ftp://x", Err: fmt.Errorf("unsupported protocol scheme")}, false},
		{"bare EOF", fmt.Errorf("parquet: %w", io.ErrUnexpectedEOF), false},
		{"corrupt log wrapping a cut body", fmt.Errorf("%w: %w", ErrCorruptLog, &url.Error{Op: "Get", Err: io.EOF}), false},
	} {
		if got := IsRetryable(tc.err); got != tc.want {
			t.Errorf("%s: IsRetryable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
