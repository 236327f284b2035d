package delta

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"kpipe/internal/s3test"
)

// newS3Store returns a storage under prefix of a new real S3 server's
// bucket, sending through hc if not nil.
func newS3Store(t *testing.T, srv *s3test.Server, prefix string, hc *http.Client) *S3Storage {
	t.Helper()
	store, err := NewS3Storage(t.Context(), srv.Bucket, prefix, S3Options{
		Endpoint: srv.Endpoint, PathStyle: true, Region: srv.Region,
		Credentials: srv.Credentials(), HTTPClient: hc,
	})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func TestS3StorageContract(t *testing.T) {
	srv := s3test.Start(t)
	testStorageContract(t, newS3Store(t, srv, "contract/table", nil))
	// At the bucket's root too.
	testStorageContract(t, newS3Store(t, srv, "", nil))
}

func TestS3OpenLocation(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	store, err := OpenLocation(srv.URL("tables/one"))
	if err != nil {
		t.Fatal(err)
	}
	if got := store.Location(); got != "s3://"+srv.Bucket+"/tables/one" {
		t.Fatalf("Location() = %q", got)
	}
	if err := store.PutIfAbsent(t.Context(), "_delta_log/00000000000000000000.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	// The endpoint from the SDK's environment variable, path style
	// from kpipe's.
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	t.Setenv("KPIPE_S3_FORCE_PATH_STYLE", "1")
	viaEnv, err := OpenLocation("s3://" + srv.Bucket + "/tables/one/")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := viaEnv.Read(t.Context(), "_delta_log/00000000000000000000.json"); err != nil || string(got) != "{}" {
		t.Fatalf("Read through the environment's endpoint: %q, %v", got, err)
	}

	for _, bad := range []string{"s3://", "s3:///prefix", "s3://b/p?endpont=x", "s3://b/p?path_style=maybe"} {
		if _, err := OpenLocation(bad); err == nil {
			t.Errorf("OpenLocation(%q) succeeded", bad)
		}
	}
}

// A whole table on S3: create, ten appends with a checkpoint, snapshot,
// replay from the checkpoint, rows read back.
func TestS3RoundTripSpecTable(t *testing.T) {
	srv := s3test.Start(t)
	testRoundTripSpecTable(t, newS3Store(t, srv, "spec/table", nil))
}

// Four writers, twenty commits each, on one S3 table: contiguous
// versions, nothing lost or doubled.
func TestS3ConcurrentWriters(t *testing.T) {
	srv := s3test.Start(t)
	store := newS3Store(t, srv, "concurrent", nil)
	createSpecTable(t, store).Close(t.Context())
	testConcurrentWriters(t, store, 4, 20)
}

// faultTransport breaks the conditional PutObjects (If-None-Match) it
// sees, as fault says, and sends everything else as is.
type faultTransport struct {
	next  http.RoundTripper
	held  *http.Request // a faultDelayed put, sent before the next one
	fault atomic.Value  // func(n int) string: the n'th conditional put's fault
	puts  atomic.Int32
}

// Faults of a conditional put.
const (
	faultNone     = ""
	faultDropResp = "drop-response" // sent, applied, the response lost
	faultDropReq  = "drop-request"  // never sent
	fault503      = "503"           // answered 503 without being applied
	fault409      = "409"           // answered ConditionalRequestConflict
	faultDelayed  = "delayed"       // lost now, applied just before the next put
)

func (f *faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPut || req.Header.Get("If-None-Match") == "" {
		return f.next.RoundTrip(req)
	}
	n := int(f.puts.Add(1))
	fault, _ := f.fault.Load().(func(int) string)
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	if held := f.held; held != nil {
		f.held = nil
		resp, err := f.next.RoundTrip(held)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	switch fault(n) {
	case faultDelayed:
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		held := req.Clone(req.Context())
		held.Body = io.NopCloser(bytes.NewReader(body))
		f.held = held
		return nil, reset
	case faultDropResp:
		resp, err := f.next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, reset
	case faultDropReq:
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, reset
	case fault503, fault409:
		if req.Body != nil {
			req.Body.Close()
		}
		code, body := 503, `<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>`
		if fault(n) == fault409 {
			code, body = 409, `<Error><Code>ConditionalRequestConflict</Code><Message>injected</Message></Error>`
		}
		return &http.Response{
			StatusCode: code, Status: http.StatusText(code), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:  http.Header{"Content-Type": []string{"application/xml"}},
			Body:    io.NopCloser(strings.NewReader(body)),
			Request: req, ContentLength: int64(len(body)),
		}, nil
	}
	return f.next.RoundTrip(req)
}

// A conditional put whose outcome is lost is resolved by reading the key
// back: our bytes are success, others' ErrExist, none another attempt.
func TestS3PutIfAbsentAmbiguous(t *testing.T) {
	srv := s3test.Start(t)
	ft := &faultTransport{next: http.DefaultTransport}
	store := newS3Store(t, srv, "ambiguous", &http.Client{Transport: ft})
	plain := newS3Store(t, srv, "ambiguous", nil)
	ctx := t.Context()
	for _, tc := range []struct {
		name     string
		faults   []string // of the successive conditional puts
		existing string   // another writer's object at the key first
		wantErr  error
	}{
		{name: "response lost after the put landed", faults: []string{faultDropResp}},
		{name: "response lost twice", faults: []string{faultDropReq, faultDropResp}},
		{name: "request lost before sending", faults: []string{faultDropReq}},
		// Read back: absent; then it lands, and the next attempt meets
		// it (412), which is ours.
		{name: "request landed late", faults: []string{faultDelayed}},
		{name: "request landed late, another writer's object", faults: []string{faultDelayed}, existing: "theirs", wantErr: ErrExist},
		{name: "503 then success", faults: []string{fault503}},
		{name: "409 conflict then success", faults: []string{fault409, fault409}},
		{name: "response lost, another writer's object", faults: []string{faultDropResp}, existing: "theirs", wantErr: ErrExist},
		{name: "409 conflict, another writer's object", faults: []string{fault409}, existing: "theirs", wantErr: ErrExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "_delta_log/" + strings.ReplaceAll(tc.name, " ", "_") + ".json"
			if tc.existing != "" {
				if err := plain.PutIfAbsent(ctx, key, []byte(tc.existing)); err != nil {
					t.Fatal(err)
				}
			}
			ft.puts.Store(0)
			ft.fault.Store(func(n int) string {
				if n <= len(tc.faults) {
					return tc.faults[n-1]
				}
				return faultNone
			})
			ours := []byte(`{"commitInfo":{"txnId":"` + tc.name + `"}}`)
			err := store.PutIfAbsent(ctx, key, ours)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("PutIfAbsent: %v, want %v", err, tc.wantErr)
			}
			want := ours
			if tc.existing != "" {
				want = []byte(tc.existing)
			}
			if got, err := plain.Read(ctx, key); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("object %q, %v; want %q", got, err, want)
			}
		})
	}
}

// Transient S3 failures are retryable by IsRetryable; a store the
// credentials may not use, or a bucket that does not exist, are not.
func TestS3ErrorsRetryable(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()

	// Always 503: the SDK's retries run out.
	unavailable := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		body := `<Error><Code>SlowDown</Code><Message>injected</Message></Error>`
		return &http.Response{StatusCode: 503, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": []string{"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
	})}
	// Nothing listens on the port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedEndpoint := "http://" + l.Addr().String()
	l.Close()

	mk := func(o S3Options) *S3Storage {
		if o.Endpoint == "" {
			o.Endpoint = srv.Endpoint
		}
		o.PathStyle, o.Region = true, srv.Region
		if o.Credentials == nil {
			o.Credentials = srv.Credentials()
		}
		bucket := srv.Bucket
		s, err := NewS3Storage(ctx, bucket, "t", o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noBucket, err := NewS3Storage(ctx, "no-such-bucket", "t", S3Options{Endpoint: srv.Endpoint, PathStyle: true, Region: srv.Region, Credentials: srv.Credentials()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		store     *S3Storage
		retryable bool
	}{
		{"503 SlowDown", mk(S3Options{HTTPClient: unavailable}), true},
		{"connection refused", mk(S3Options{Endpoint: closedEndpoint}), true},
		{"access denied", mk(S3Options{Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, "wrong-secret", "")}), false},
		{"no such bucket", noBucket, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for op, call := range map[string]func() error{
				"Read":        func() error { _, err := tc.store.Read(ctx, "k"); return err },
				"List":        func() error { _, err := tc.store.List(ctx, "", ""); return err },
				"Write":       func() error { return tc.store.Write(ctx, "k", []byte("x")) },
				"PutIfAbsent": func() error { return tc.store.PutIfAbsent(ctx, "k2", []byte("x")) },
			} {
				err := call()
				if err == nil {
					t.Fatalf("%s succeeded", op)
				}
				if errors.Is(err, ErrExist) || errors.Is(err, ErrNotExist) {
					t.Fatalf("%s: %v: not a missing or existing key", op, err)
				}
				if got := IsRetryable(err); got != tc.retryable {
					t.Errorf("%s: IsRetryable(%v) = %v, want %v", op, err, got, tc.retryable)
				}
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Commits whose responses are lost land once each, at consecutive
// versions: the table never sees its own commit as a concurrent one.
func TestS3AppendResponsesLost(t *testing.T) {
	srv := s3test.Start(t)
	ft := &faultTransport{next: http.DefaultTransport}
	ft.fault.Store(func(n int) string {
		if n%2 == 0 {
			return faultDropResp
		}
		return faultDelayed
	})
	store := newS3Store(t, srv, "lost", &http.Client{Transport: ft})
	tb := createSpecTable(t, store)
	defer tb.Close(t.Context())
	ts := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	for c := 1; c <= 6; c++ {
		res, err := tb.Append(t.Context(), []map[string]any{specRow(0, c, ts)}, AppendOptions{SchemaEvolution: true, Txns: []Txn{{AppID: "w", Version: int64(c)}}})
		if err != nil {
			t.Fatalf("commit %d: %v", c, err)
		}
		if res.Version != int64(c) {
			t.Fatalf("commit %d landed at version %d", c, res.Version)
		}
	}
	reopened, err := Open(t.Context(), store)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := reopened.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadRows(t.Context(), store, snap)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version() != 6 || len(rows) != 6 {
		t.Fatalf("version %d, %d rows; want 6 and 6", snap.Version(), len(rows))
	}
}
