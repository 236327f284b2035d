package httpconn

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ErrMalformedBody means a 2xx response body was not the JSON that was
// expected. It is wrapped in an *Error.
var ErrMalformedBody = errors.New("malformed response body")

// Error is the error of every failed request on a connection. It never
// holds the token or any request header: URL is the path (and query) only.
type Error struct {
	// Connection is the connection's name.
	Connection string
	// Host is the API's host (and port), from the connection's base_url.
	Host string
	// Method and URL (path and query, no host, no credentials).
	Method string
	URL    string
	// Status is the last response's status code; 0 when no response arrived
	// (network error, timeout, cancellation).
	Status int
	// Retryable reports whether the failure was of a retryable kind (network
	// error, timeout, 5xx, 429, malformed body). It stays true once retries
	// are exhausted, so callers can tell "API down" from "bad request".
	Retryable bool
	// Attempts is how many requests were sent.
	Attempts int
	// Body is the start of the last response body (at most 256 bytes).
	Body string
	// Err is the cause when there is no status to tell it: a network error,
	// context.Canceled, context.DeadlineExceeded or ErrMalformedBody.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Connection != "" {
		b.WriteString(e.Connection)
		if e.Host != "" {
			b.WriteString(" (")
			b.WriteString(e.Host)
			b.WriteByte(')')
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.URL)
	if e.Status != 0 {
		b.WriteString(": status ")
		b.WriteString(strconv.Itoa(e.Status))
		if t := http.StatusText(e.Status); t != "" {
			b.WriteByte(' ')
			b.WriteString(t)
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	fmt.Fprintf(&b, " (%d attempt", e.Attempts)
	if e.Attempts != 1 {
		b.WriteByte('s')
	}
	b.WriteByte(')')
	if e.Body != "" {
		b.WriteString(": ")
		b.WriteString(e.Body)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// IsRetryable reports whether err is a failure worth trying again later
// (API down, overloaded, rate limited, timing out).
func IsRetryable(err error) bool {
	var he *Error
	return errors.As(err, &he) && he.Retryable
}

// IsNotFound reports whether err is a 404 response.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// StatusOf returns the HTTP status of err, or 0.
func StatusOf(err error) int {
	var he *Error
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// retryableStatus reports whether a status is worth retrying.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}
