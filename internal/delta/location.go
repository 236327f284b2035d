package delta

import (
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// IsObjectStoreLocation reports whether location is an object store URL
// (s3://...) rather than a local folder or file:// URL.
func IsObjectStoreLocation(location string) bool {
	return strings.Contains(location, "://") && !strings.HasPrefix(location, "file://")
}

// JoinLocation joins path elements to a table location: to a folder with
// the operating system's separators, to a URL (s3://bucket/prefix?query)
// inside its path, keeping its query (endpoint, path_style, region):
//
//	JoinLocation("s3://b/p?path_style=true", "delta", "t") == "s3://b/p/delta/t?path_style=true"
func JoinLocation(location string, elem ...string) string {
	if !strings.Contains(location, "://") {
		return filepath.Join(append([]string{location}, elem...)...)
	}
	base, query, hasQuery := strings.Cut(location, "?")
	scheme, rest, _ := strings.Cut(base, "://")
	joined := scheme + "://" + strings.TrimSuffix(path.Join(append([]string{rest}, elem...)...), "/")
	if hasQuery {
		joined += "?" + query
	}
	return joined
}

// S3LocationParts returns the bucket and key prefix of an s3:// location
// (without its query), for callers that key local state by it.
func S3LocationParts(location string) (bucket, prefix string, ok bool) {
	if !strings.HasPrefix(location, "s3://") {
		return "", "", false
	}
	u, err := url.Parse(location)
	if err != nil || u.Host == "" {
		return "", "", false
	}
	return u.Host, strings.Trim(u.Path, "/"), true
}
