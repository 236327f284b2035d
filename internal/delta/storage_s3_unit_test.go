package delta

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// A location's query and the environment configure the client; nothing
// is sent.
func TestOpenS3LocationOptions(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	for _, tc := range []struct {
		location, envPathStyle string
		bucket, prefix         string
		endpoint, region       string
		pathStyle              bool
	}{
		{location: "s3://b", bucket: "b", region: "us-east-1"},
		{location: "s3://b/", bucket: "b", region: "us-east-1"},
		{location: "s3://b/a/t/", bucket: "b", prefix: "a/t/", region: "us-east-1"},
		{location: "s3://b/t?endpoint=http://127.0.0.1:9000&path_style=true&region=eu-west-1", bucket: "b", prefix: "t/", endpoint: "http://127.0.0.1:9000", region: "eu-west-1", pathStyle: true},
		{location: "s3://b/t", envPathStyle: "1", bucket: "b", prefix: "t/", region: "us-east-1", pathStyle: true},
		{location: "s3://b/t?path_style=false", envPathStyle: "1", bucket: "b", prefix: "t/", region: "us-east-1"},
	} {
		t.Run(tc.location, func(t *testing.T) {
			t.Setenv("KPIPE_S3_FORCE_PATH_STYLE", tc.envPathStyle)
			store, err := OpenLocation(tc.location)
			if err != nil {
				t.Fatal(err)
			}
			s := store.(*S3Storage)
			o := s.client.Options()
			if s.bucket != tc.bucket || s.prefix != tc.prefix || aws.ToString(o.BaseEndpoint) != tc.endpoint || o.Region != tc.region || o.UsePathStyle != tc.pathStyle {
				t.Fatalf("bucket %q prefix %q endpoint %q region %q path style %v; want %+v", s.bucket, s.prefix, aws.ToString(o.BaseEndpoint), o.Region, o.UsePathStyle, tc)
			}
		})
	}
}

func TestS3PutOutcome(t *testing.T) {
	respErr := func(code int, apiCode string) error {
		var inner error = errors.New("no body")
		if apiCode != "" {
			inner = &smithy.GenericAPIError{Code: apiCode}
		}
		return fmt.Errorf("operation error S3: PutObject: %w", &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: inner,
		}})
	}
	// As the SDK reports a failed send: a response of status 0.
	sendErr := fmt.Errorf("operation error S3: PutObject: %w", &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{}},
		Err:      &smithyhttp.RequestSendError{Err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}},
	}})
	for _, tc := range []struct {
		name string
		err  error
		want putOutcome
	}{
		{"412", respErr(412, "PreconditionFailed"), putExists},
		{"412 without a code", respErr(412, ""), putExists},
		{"409", respErr(409, "ConditionalRequestConflict"), putConflict},
		{"500", respErr(500, "InternalError"), putUnknown},
		{"503", respErr(503, "SlowDown"), putUnknown},
		{"429", respErr(429, ""), putUnknown},
		{"connection reset", sendErr, putUnknown},
		{"timeout", fmt.Errorf("put: %w", errors.Join(errors.New("deadline"), &net.OpError{Op: "dial", Err: syscall.ETIMEDOUT})), putUnknown},
		{"403", respErr(403, "AccessDenied"), putFailed},
		{"404", respErr(404, "NoSuchBucket"), putFailed},
		{"400", respErr(400, "InvalidRequest"), putFailed},
	} {
		if got := s3PutOutcome(tc.err); got != tc.want {
			t.Errorf("%s: outcome %d, want %d", tc.name, got, tc.want)
		}
	}
}
