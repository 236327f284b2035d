package query

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"kpipe/internal/delta"
)

// A table on an object store (s3://...) is read through a local cache of
// its snapshot's data files: DuckDB's httpfs extension cannot be
// downloaded here, and kpipe's own storage already knows the endpoint and
// credentials. The cache of a table is
//
//	<cache dir>/<bucket_prefix>-<12 hex of SHA-256(location)>/files/<path of the file in the table>
//
// Only the files of the snapshot read are fetched. A cached file is used
// again when its size is the one the log records (Delta data files are
// never changed in place, and each has a unique name); otherwise it is
// fetched again. Files are written to a temporary name and renamed, so a
// killed run leaves no half file under a real name. Cached files no
// snapshot has used for cacheKeep are deleted by the next Open.

// cacheKeep is how long a cached file no snapshot uses is kept: another
// "kpipe query" of an older snapshot may still read it.
const cacheKeep = time.Hour

// fetchParallel bounds the concurrent downloads of one Open.
const fetchParallel = 8

// DefaultCacheDir is the cache folder used when WithCacheDir is not given:
// kpipe/tables under the user's cache folder ($XDG_CACHE_HOME or
// ~/.cache on Linux).
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache folder for the local copy of the table (%w): pass --cache-dir", err)
	}
	return filepath.Join(dir, "kpipe", "tables"), nil
}

// WithCacheDir sets the folder of the local cache the snapshot's files of
// a table on an object store are read through (default DefaultCacheDir).
// Local tables are read in place.
func WithCacheDir(dir string) Option { return func(o *options) { o.cacheDir = dir } }

// CacheStats says what Open did with the cache of a table on an object
// store: files fetched (and their bytes) and files already cached.
type CacheStats struct {
	Dir          string
	Fetched      int
	FetchedBytes int64
	Reused       int
}

// tableCacheDir is the cache folder of the table at location.
func tableCacheDir(root, location string) string {
	sum := sha256.Sum256([]byte(location))
	name := location
	if i := strings.IndexAny(name, "?#"); i >= 0 {
		name = name[:i]
	}
	if _, rest, ok := strings.Cut(name, "://"); ok {
		name = rest
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, strings.Trim(name, "/"))
	if len(name) > 80 {
		name = name[len(name)-80:]
	}
	return filepath.Join(root, name+"-"+hex.EncodeToString(sum[:6]))
}

// cacheFiles copies the snapshot's data files from store into the table's
// cache folder under root and returns the local path of each add path.
func cacheFiles(ctx context.Context, store delta.Storage, location, root string, files []delta.AddFile) (map[string]string, CacheStats, error) {
	dir := filepath.Join(tableCacheDir(root, location), "files")
	st := CacheStats{Dir: filepath.Dir(dir)}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, st, fmt.Errorf("creating the table's cache folder (choose another with --cache-dir): %w", err)
	}
	paths := make(map[string]string, len(files))
	for _, f := range files {
		k := delta.StorageKey(f.Path)
		clean := path.Clean("/" + k)
		if strings.Contains(k, "://") || clean == "/" || strings.Contains(k, "\x00") {
			return nil, st, fmt.Errorf("%w: data file %s is not inside the table", delta.ErrUnsupportedFeature, f.Path)
		}
		paths[f.Path] = filepath.Join(dir, filepath.FromSlash(clean[1:]))
	}
	var fetched, reused atomic.Int64
	var fetchedBytes atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchParallel)
	now := time.Now()
	for _, f := range files {
		local := paths[f.Path]
		g.Go(func() error {
			if fi, err := os.Stat(local); err == nil && fi.Mode().IsRegular() && fi.Size() == f.Size {
				reused.Add(1)
				// Marks the file in use, for pruning.
				_ = os.Chtimes(local, now, now)
				return nil
			}
			data, err := store.Read(gctx, delta.StorageKey(f.Path))
			if err != nil {
				return fmt.Errorf("fetching %s into the cache: %w", f.Path, err)
			}
			if int64(len(data)) != f.Size {
				return fmt.Errorf("%w: data file %s is %d bytes, the log says %d", delta.ErrCorruptLog, f.Path, len(data), f.Size)
			}
			if err := writeAtomic(local, data); err != nil {
				return fmt.Errorf("caching %s (choose another folder with --cache-dir): %w", f.Path, err)
			}
			fetched.Add(1)
			fetchedBytes.Add(int64(len(data)))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, st, err
	}
	st.Fetched, st.FetchedBytes, st.Reused = int(fetched.Load()), fetchedBytes.Load(), int(reused.Load())
	used := make(map[string]bool, len(paths))
	for _, p := range paths {
		used[p] = true
	}
	pruneCache(dir, used, now.Add(-cacheKeep))
	return paths, st, nil
}

// writeAtomic writes data to path through a temporary file in its folder.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".fetch-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// pruneCache deletes the files under dir that are not used and were last
// used (or left half-written) before cutoff. Failures are ignored: the
// cache only costs space.
func pruneCache(dir string, used map[string]bool, cutoff time.Time) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || used[p] {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().Before(cutoff) {
			_ = os.Remove(p)
		}
		return nil
	})
}
