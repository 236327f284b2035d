package delta

import (
	"path/filepath"
	"testing"
)

func TestJoinLocation(t *testing.T) {
	for _, tc := range []struct {
		loc  string
		elem []string
		want string
	}{
		{"data", []string{"delta", "t"}, filepath.Join("data", "delta", "t")},
		{"s3://b/p", []string{"delta", "t"}, "s3://b/p/delta/t"},
		{"s3://b", []string{"delta", "t"}, "s3://b/delta/t"},
		{"s3://b/p/", []string{"delta", "t"}, "s3://b/p/delta/t"},
		{"s3://b/p?endpoint=http://127.0.0.1:9000&path_style=true", []string{"delta", "t"}, "s3://b/p/delta/t?endpoint=http://127.0.0.1:9000&path_style=true"},
	} {
		if got := JoinLocation(tc.loc, tc.elem...); got != tc.want {
			t.Errorf("JoinLocation(%q, %q) = %q, want %q", tc.loc, tc.elem, got, tc.want)
		}
	}
	if b, p, ok := S3LocationParts("s3://b/x/y?region=r"); !ok || b != "b" || p != "x/y" {
		t.Errorf("S3LocationParts = %q %q %v", b, p, ok)
	}
	if _, _, ok := S3LocationParts("data/x"); ok {
		t.Error("S3LocationParts of a folder: ok")
	}
}
