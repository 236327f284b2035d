package delta

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// FileInfo describes one stored object.
type FileInfo struct {
	// Key is the object's path relative to the storage root, with '/'
	// separators.
	Key     string
	Size    int64
	ModTime time.Time
}

// Storage is the object store a table lives in. It is shaped like S3: keys
// are '/'-separated paths relative to the table root, there is no rename, and
// the only atomic primitive is PutIfAbsent, which Delta commits rely on.
//
// Implementations must be safe for concurrent use. Every method blocks until
// the operation is durable or has failed; a missing key is reported as an
// error wrapping ErrNotExist.
type Storage interface {
	// Read returns the whole object.
	Read(ctx context.Context, key string) ([]byte, error)
	// List returns the objects whose key starts with prefix and is not less
	// than startAt, sorted by key. Listing a prefix that does not exist
	// returns no objects and no error.
	List(ctx context.Context, prefix, startAt string) ([]FileInfo, error)
	// Write creates or atomically replaces an object: readers see the old
	// content or the new one, never a part.
	Write(ctx context.Context, key string, data []byte) error
	// PutIfAbsent creates an object atomically and durably, or fails with an
	// error wrapping ErrExist when the key exists (even if being written
	// concurrently by another process).
	PutIfAbsent(ctx context.Context, key string, data []byte) error
	// Delete removes an object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Location names the table root for messages (a folder or URL).
	Location() string
}

// dirSyncer is a Storage that can write an object durably except for its
// name, and make the names durable later: a local folder's fsync covers all
// its new entries, so an Append that writes several files into one folder
// syncs it once.
type dirSyncer interface {
	// writeUnsynced is Write whose result survives a crash only after
	// syncDirs of its key.
	writeUnsynced(ctx context.Context, key string, data []byte) error
	// syncDirs makes the names written by writeUnsynced for keys durable.
	syncDirs(ctx context.Context, keys []string) error
}

// spooler is a Storage that can take an object from a local file, so that
// a data file too large to hold in memory (a compaction's) is written to
// disk as it is encoded and stored from there.
type spooler interface {
	// spoolFile creates an empty local file for the content of key.
	spoolFile(key string) (*os.File, error)
	// writeSpooled stores f, a file of spoolFile(key) written in full, as
	// key, atomically and durably as Write does, and removes the local
	// file (also when it fails).
	writeSpooled(ctx context.Context, key string, f *os.File) error
}

// OpenLocation returns the Storage for a table location: a local folder
// (absolute or relative path, or a file:// URL) or an S3 bucket and prefix
// (s3://bucket/prefix, see S3Storage; the URL may add
// ?endpoint=URL&path_style=true&region=R for S3-compatible servers), with
// the default options (for a folder: files 0640, folders 0750). Other
// object store URLs are not supported yet.
func OpenLocation(location string) (Storage, error) {
	return OpenLocationWith(location)
}

// OpenLocationWith is OpenLocation with options, such as WithFileMode and
// WithDirMode for a local folder.
func OpenLocationWith(location string, opts ...StorageOption) (Storage, error) {
	switch {
	case location == "":
		return nil, fmt.Errorf("delta: empty table location")
	case strings.HasPrefix(location, "file://"):
		return NewLocalStorage(strings.TrimPrefix(location, "file://"), opts...)
	case strings.HasPrefix(location, "s3://"):
		return openS3Location(location)
	case strings.Contains(location, "://"):
		scheme, _, _ := strings.Cut(location, "://")
		return nil, fmt.Errorf("delta: table location %q: %w: %s:// storage is not implemented yet", location, ErrUnsupportedFeature, scheme)
	}
	return NewLocalStorage(location, opts...)
}
