package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"kpipe/internal/clock"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Storage is a Storage in an S3 bucket, under a key prefix: AWS S3 or
// any S3-compatible store that honours conditional writes (MinIO,
// versitygw, Cloudflare R2, ...).
//
// PutIfAbsent is a PutObject with If-None-Match: "*", which the store
// refuses with 412 Precondition Failed when the key exists: that is the
// only atomic primitive Delta commits need, so there is no lock service. A
// put whose outcome is unknown (a timeout, a reset connection or a 5xx
// after the request was sent) is resolved by reading the key back: a log
// entry carries a commitInfo txnId unique to the attempt, so bytes equal
// to the ones sent mean the put was ours.
//
// Other calls are retried by the AWS SDK's standard retryer; the errors
// that remain are classified by IsRetryable (5xx, throttling, timeouts and
// connection errors are retryable; access denied or a missing bucket are
// not).
type S3Storage struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or ends with '/'
	location string
}

// S3Options configures NewS3Storage beyond the AWS SDK's defaults.
type S3Options struct {
	// Endpoint overrides the S3 endpoint URL, for a local or
	// S3-compatible server ("http://127.0.0.1:9000"). Empty: the SDK's
	// own, which honours AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL.
	Endpoint string
	// PathStyle addresses the bucket in the URL's path rather than its
	// host name, as most local servers need.
	PathStyle bool
	// Region overrides the SDK's region (AWS_REGION, the profile);
	// us-east-1 when neither says.
	Region string
	// HTTPClient, if set, sends the requests (tests inject faults with
	// it).
	HTTPClient *http.Client
	// Credentials, if set, replace the SDK's default credential chain.
	Credentials aws.CredentialsProvider
}

// s3PutAttempts bounds the attempts of one PutIfAbsent whose outcome
// stays unknown or conflicts with a concurrent conditional write.
const s3PutAttempts = 5

// NewS3Storage returns the Storage for s3://bucket/prefix. Credentials come
// from the AWS SDK's default chain (environment, shared config and
// credentials files, SSO, web identity, container and instance roles)
// unless o.Credentials is set.
func NewS3Storage(ctx context.Context, bucket, prefix string, o S3Options) (*S3Storage, error) {
	location := "s3://" + bucket
	if bucket == "" || strings.Contains(bucket, "/") {
		return nil, fmt.Errorf("delta: table location %q: want s3://bucket/prefix", location+"/"+prefix)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		location += "/" + prefix
		prefix += "/"
	}
	var loadOpts []func(*config.LoadOptions) error
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("delta: table location %q: loading the AWS configuration: %w", location, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		if o.HTTPClient != nil {
			so.HTTPClient = o.HTTPClient
		}
	})
	return &S3Storage{client: client, bucket: bucket, prefix: prefix, location: location}, nil
}

// openS3Location parses s3://bucket/prefix[?endpoint=URL&path_style=true&region=R]
// and returns its storage. KPIPE_S3_FORCE_PATH_STYLE=1 in the environment
// sets path style when the URL does not say.
func openS3Location(location string) (*S3Storage, error) {
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("delta: table location %q: %w", location, err)
	}
	var o S3Options
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "path_style", "region":
		default:
			return nil, fmt.Errorf("delta: table location %q: unknown parameter %q (want endpoint, path_style or region)", location, k)
		}
	}
	o.Endpoint = q.Get("endpoint")
	o.Region = q.Get("region")
	ps := q.Get("path_style")
	if ps == "" {
		ps = os.Getenv("KPIPE_S3_FORCE_PATH_STYLE")
	}
	if ps != "" {
		if o.PathStyle, err = strconv.ParseBool(ps); err != nil {
			return nil, fmt.Errorf("delta: table location %q: path_style %q: want true or false", location, ps)
		}
	}
	return NewS3Storage(context.Background(), u.Host, u.Path, o)
}

// Location returns s3://bucket/prefix.
func (s *S3Storage) Location() string { return s.location }

func (s *S3Storage) objectKey(key string) (string, error) {
	clean := path.Clean("/" + key)
	if key == "" || clean == "/" || strings.Contains(key, "\x00") {
		return "", fmt.Errorf("delta: invalid key %q", key)
	}
	return s.prefix + clean[1:], nil
}

// mapS3Error wraps ErrNotExist into a missing key's error.
func mapS3Error(err error) error {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return fmt.Errorf("%w: %w", ErrNotExist, err)
	}
	return err
}

// Read implements Storage.
func (s *S3Storage) Read(ctx context.Context, key string) ([]byte, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	b, err := s.get(ctx, k)
	if err != nil {
		return nil, fmt.Errorf("delta: reading %s/%s: %w", s.location, key, err)
	}
	return b, nil
}

func (s *S3Storage) get(ctx context.Context, k string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return nil, mapS3Error(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		// The body was cut short: a network failure, as IsRetryable
		// knows it.
		return nil, &url.Error{Op: "Get", URL: "s3://" + s.bucket + "/" + k, Err: err}
	}
	return b, nil
}

// List implements Storage with ListObjectsV2, page by page.
func (s *S3Storage) List(ctx context.Context, prefix, startAt string) ([]FileInfo, error) {
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)}
	// StartAfter is exclusive; startAt minus its last byte sorts before
	// startAt and every key from it, and the loop drops the few between.
	if startAt > prefix {
		in.StartAfter = aws.String(s.prefix + startAt[:len(startAt)-1])
	}
	var out []FileInfo
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("delta: listing %s/%s: %w", s.location, prefix, err)
		}
		for _, obj := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(obj.Key), s.prefix)
			if key < startAt || strings.HasSuffix(key, "/") {
				continue
			}
			out = append(out, FileInfo{Key: key, Size: aws.ToInt64(obj.Size), ModTime: aws.ToTime(obj.LastModified)})
		}
	}
	return out, nil
}

// Write implements Storage: one PutObject, which S3 applies atomically.
func (s *S3Storage) Write(ctx context.Context, key string, data []byte) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &k, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
	if err != nil {
		return fmt.Errorf("delta: writing %s/%s: %w", s.location, key, err)
	}
	return nil
}

// spoolFile implements spooler: a temporary file of the operating
// system's (os.TempDir).
func (s *S3Storage) spoolFile(key string) (*os.File, error) {
	f, err := os.CreateTemp("", "kpipe-spool-*.parquet")
	if err != nil {
		return nil, fmt.Errorf("delta: writing %s/%s: %w (set TMPDIR to a folder with room for a data file)", s.location, key, err)
	}
	return f, nil
}

// writeSpooled implements spooler: one PutObject of the file, which the
// SDK reads (and seeks back to resend) from disk.
func (s *S3Storage) writeSpooled(ctx context.Context, key string, f *os.File) error {
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err == nil {
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &k, Body: f, ContentLength: aws.Int64(size)})
	}
	if err != nil {
		return fmt.Errorf("delta: writing %s/%s: %w", s.location, key, err)
	}
	return nil
}

// PutIfAbsent implements Storage: PutObject with If-None-Match: "*".
//
// The SDK does not retry this call itself: a retry after a lost response
// would meet its own object and report it as someone else's. Instead, an
// attempt whose outcome is unknown is resolved by reading the key back:
// the bytes sent mean success, other bytes ErrExist, no object another
// attempt, and a read back that fails for a passing cause (a 503
// SlowDown) another attempt too: only the read back can tell a 412 of its
// own object from someone else's. A 409 ConditionalRequestConflict (a
// concurrent conditional write of the key in flight) is tried again too;
// the next attempt sees the winner's object.
func (s *S3Storage) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	ambiguous := false
	var last error
	for attempt := range s3PutAttempts {
		if attempt > 0 {
			if err := clock.Sleep(ctx, time.Duration(50<<attempt)*time.Millisecond); err != nil {
				return fmt.Errorf("delta: creating %s/%s: %w (after %w)", s.location, key, err, last)
			}
		}
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &k, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
			IfNoneMatch: aws.String("*"),
		}, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })
		if err == nil {
			return nil
		}
		last = err
		switch s3PutOutcome(err) {
		case putExists:
			if !ambiguous {
				return fmt.Errorf("delta: creating %s/%s: %w", s.location, key, ErrExist)
			}
			// An earlier attempt may have landed: whose object is it?
		case putConflict:
			continue
		case putFailed:
			return fmt.Errorf("delta: creating %s/%s: %w", s.location, key, err)
		case putUnknown:
			if ctx.Err() != nil {
				return fmt.Errorf("delta: creating %s/%s: outcome unknown: %w", s.location, key, err)
			}
			ambiguous = true
		}
		got, rerr := s.get(ctx, k)
		switch {
		case rerr == nil && bytes.Equal(got, data):
			return nil
		case rerr == nil:
			return fmt.Errorf("delta: creating %s/%s: %w", s.location, key, ErrExist)
		case errors.Is(rerr, ErrNotExist):
			continue
		case IsRetryable(rerr) && ctx.Err() == nil:
			// Still unknown: put again, and read back again after a 412.
			last = fmt.Errorf("outcome unknown (%v), and reading it back failed: %w", err, rerr)
			continue
		default:
			return fmt.Errorf("delta: creating %s/%s: outcome unknown (%w), and reading it back failed: %w", s.location, key, err, rerr)
		}
	}
	return fmt.Errorf("delta: creating %s/%s: gave up after %d attempts: %w", s.location, key, s3PutAttempts, last)
}

type putOutcome int

const (
	putUnknown  putOutcome = iota // may or may not have been applied
	putExists                     // 412: the key exists
	putConflict                   // 409: a concurrent conditional write
	putFailed                     // refused: not applied, and retrying will not help
)

// s3PutOutcome classifies a conditional PutObject's error.
func s3PutOutcome(err error) putOutcome {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed":
			return putExists
		case "ConditionalRequestConflict":
			return putConflict
		}
	}
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) {
		switch code := hs.HTTPStatusCode(); {
		case code == http.StatusPreconditionFailed:
			return putExists
		case code == http.StatusConflict:
			return putConflict
		case code == 0 || code >= 500 || code == 408 || code == 429:
			// No response (the SDK reports status 0 when sending
			// failed), or a 5xx, which may come after the store
			// applied the put; a throttled or timed-out request is
			// treated as unknown too, which costs one read.
			return putUnknown
		default:
			return putFailed
		}
	}
	// No HTTP response: a timeout, a reset connection, a failed dial.
	return putUnknown
}

// Delete implements Storage.
func (s *S3Storage) Delete(ctx context.Context, key string) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &k}); err != nil {
		if errors.Is(mapS3Error(err), ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delta: deleting %s/%s: %w", s.location, key, err)
	}
	return nil
}

var (
	_ Storage = (*S3Storage)(nil)
	_ spooler = (*S3Storage)(nil)
)
