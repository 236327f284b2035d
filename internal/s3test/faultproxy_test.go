package s3test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// The proxy forwards signed requests unchanged (the server accepts their
// signatures) until a rule says otherwise, and counts what it injects.
func TestProxyForwardsAndInjects(t *testing.T) {
	srv := Start(t)
	px := srv.StartProxy(t)
	c := s3.New(s3.Options{Region: srv.Region, BaseEndpoint: aws.String(px.Endpoint), UsePathStyle: true, Credentials: srv.Credentials(), Retryer: aws.NopRetryer{}})
	ctx := t.Context()
	key := aws.String("p/k")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &srv.Bucket, Key: key, Body: strings.NewReader("hello")}); err != nil {
		t.Fatalf("PutObject through the proxy: %v", err)
	}
	if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &srv.Bucket, Key: key}); err != nil {
		t.Fatalf("GetObject through the proxy: %v", err)
	}

	px.SetRule(Always(Fault503))
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &srv.Bucket, Key: key})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "SlowDown" {
		t.Fatalf("GetObject with 503 injected: %v, want SlowDown", err)
	}
	px.SetRule(func(r *http.Request) Fault {
		if r.Method == http.MethodPut {
			return FaultResetAfter
		}
		return FaultNone
	})
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &srv.Bucket, Key: aws.String("p/after"), Body: strings.NewReader("landed")}); err == nil {
		t.Fatal("PutObject with a reset after forwarding succeeded")
	}
	// Reset after forwarding: the server applied it.
	if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &srv.Bucket, Key: aws.String("p/after")}); err != nil {
		t.Fatalf("the put reset after forwarding did not land: %v", err)
	}
	px.Heal()
	if px.Injected(Fault503) != 1 || px.Injected(FaultResetAfter) != 1 || px.Requests() != 5 {
		t.Fatalf("injected 503 %d, reset-after %d of %d requests; want 1, 1 of 5", px.Injected(Fault503), px.Injected(FaultResetAfter), px.Requests())
	}

	rule := Rates(1, map[Fault]float64{Fault500: 0.25, FaultResetBefore: 0.25})
	counts := map[Fault]int{}
	for range 4000 {
		counts[rule(nil)]++
	}
	for f, want := range map[Fault]int{Fault500: 1000, FaultResetBefore: 1000, FaultNone: 2000} {
		if got := counts[f]; got < want*8/10 || got > want*12/10 {
			t.Errorf("Rates gave %s %d times in 4000, want about %d", f, got, want)
		}
	}
}
