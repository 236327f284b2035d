package s3test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// The server honours If-None-Match: "*" on PutObject: the second put of a
// key fails with 412 PreconditionFailed and leaves the first object.
func TestServerHonoursIfNoneMatch(t *testing.T) {
	srv := Start(t)
	c := srv.Client(nil)
	put := func(body string) error {
		_, err := c.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: &srv.Bucket, Key: aws.String("a/b.json"), Body: bytes.NewReader([]byte(body)),
			IfNoneMatch: aws.String("*"),
		})
		return err
	}
	if err := put("first"); err != nil {
		t.Fatal(err)
	}
	err := put("second")
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "PreconditionFailed" {
		t.Fatalf("second conditional put: %v, want PreconditionFailed", err)
	}
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: &srv.Bucket, Key: aws.String("a/b.json")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	if string(b) != "first" {
		t.Fatalf("object is %q, want the first put's", b)
	}
}
