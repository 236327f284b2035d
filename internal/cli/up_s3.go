package cli

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"kpipe/internal/delta"
)

// upLocalDir is the folder of kpipe up's local state, which cannot live on
// an object store: the embedded broker's data (kafka/) and the lock file.
// It is --local-data when given; else --data when that is a folder; else,
// for --data s3://bucket/prefix, data/s3/<bucket>/<prefix> under the
// working directory, so that each S3 location keeps a broker of its own
// and never shares one with a local run's data/kafka.
func upLocalDir(o upOptions) (string, error) {
	if o.localData != "" {
		return o.localData, nil
	}
	if !delta.IsObjectStoreLocation(o.dataDir) {
		return o.dataDir, nil
	}
	bucket, prefix, ok := delta.S3LocationParts(o.dataDir)
	if !ok {
		return "", usage(fmt.Errorf("--data %s: want a folder or s3://bucket/prefix", o.dataDir))
	}
	elems := []string{"data", "s3", bucket}
	for _, p := range strings.Split(path.Clean("/"+prefix), "/") {
		if p != "" {
			elems = append(elems, p)
		}
	}
	return filepath.Join(elems...), nil
}
