// Package httpconn is the HTTP client of a named connection
// (config.Connection): the one place where kpipe's HTTP retries, backoff,
// Retry-After, timeouts, concurrency and rate limits live.
//
// A Client sends GET requests to the connection's base URL with its auth
// (bearer, basic or none) and headers. Each attempt has its own timeout;
// network errors, timeouts, 5xx, 429 and malformed bodies are retried up to
// max_retries times with exponential backoff and ±20 % jitter, and a 429 or
// 503 that carries Retry-After (delta-seconds or an HTTP date) waits that
// long instead, capped at retry_after_max_seconds. At most max_concurrency
// requests are in flight, and with rate_limit set at most that many start per
// second. Every failure is an *Error that names the connection, host, path
// and status and never holds the token; IsRetryable tells "API down" from
// "bad request", IsNotFound and StatusOf read the status.
//
// The package knows HTTP and JSON, not any API: typed APIs such as
// claimx.Client are built over it.
//
//	c, err := httpconn.New(conn, httpconn.WithMetrics(m), httpconn.WithLogger(log))
//	if err != nil { ... }
//	defer c.Close()
//	obj, err := c.GetJSON(ctx, "/api/v1/projects/"+url.PathEscape(id), nil)
//	if httpconn.IsRetryable(err) { ... } // try again later
package httpconn
