package delta

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// LocalStorage is a Storage on a local file system folder. PutIfAbsent writes
// a temporary file, fsyncs it, hard-links it to the final name (which fails if
// that name exists) and fsyncs the folder, so a commit is atomic and durable
// and two processes can never both create the same key.
//
// Files (data files, log entries, checkpoints) are written with mode
// DefaultFileMode (0640) and the folders it creates with DefaultDirMode
// (0750), whatever the process's umask, unless WithFileMode or WithDirMode
// say otherwise: a table holds claim data that other users of the machine
// have no business reading. Existing files and folders keep their modes.
type LocalStorage struct {
	root     string
	fileMode fs.FileMode
	dirMode  fs.FileMode
}

const (
	// DefaultFileMode is the permission of the files LocalStorage writes:
	// read-write for the owner, read for the group.
	DefaultFileMode fs.FileMode = 0o640
	// DefaultDirMode is the permission of the folders LocalStorage
	// creates: the owner's, and the group may list and enter them.
	DefaultDirMode fs.FileMode = 0o750
)

// StorageOption configures the storage NewLocalStorage and
// OpenLocationWith return.
type StorageOption func(*storageOptions)

type storageOptions struct {
	fileMode, dirMode fs.FileMode
}

// WithFileMode sets the permission bits of the files a local storage
// writes (default DefaultFileMode); only m's permission bits are used.
func WithFileMode(m fs.FileMode) StorageOption {
	return func(o *storageOptions) { o.fileMode = m.Perm() }
}

// WithDirMode sets the permission bits of the folders a local storage
// creates (default DefaultDirMode); only m's permission bits are used.
func WithDirMode(m fs.FileMode) StorageOption {
	return func(o *storageOptions) { o.dirMode = m.Perm() }
}

func newStorageOptions(opts []StorageOption) storageOptions {
	o := storageOptions{fileMode: DefaultFileMode, dirMode: DefaultDirMode}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// NewLocalStorage returns a LocalStorage rooted at folder root. The folder
// does not need to exist yet: writes create it.
func NewLocalStorage(root string, opts ...StorageOption) (*LocalStorage, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("delta: table location %q: %w", root, err)
	}
	o := newStorageOptions(opts)
	return &LocalStorage{root: abs, fileMode: o.fileMode, dirMode: o.dirMode}, nil
}

// Location returns the root folder.
func (s *LocalStorage) Location() string { return s.root }

func (s *LocalStorage) path(key string) (string, error) {
	clean := path.Clean("/" + key)
	if key == "" || clean == "/" || strings.Contains(key, "\x00") {
		return "", fmt.Errorf("delta: invalid key %q", key)
	}
	return filepath.Join(s.root, filepath.FromSlash(clean[1:])), nil
}

func mapFSError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", ErrNotExist, err)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %w", ErrExist, err)
	}
	return err
}

// Read implements Storage.
func (s *LocalStorage) Read(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, mapFSError(err)
	}
	return b, nil
}

// List implements Storage. Hidden temporary files of in-flight writes are
// not listed.
func (s *LocalStorage) List(ctx context.Context, prefix, startAt string) ([]FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dirKey := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirKey = prefix[:i]
	}
	dir := s.root
	if dirKey != "" {
		var err error
		if dir, err = s.path(dirKey); err != nil {
			return nil, err
		}
	}
	var out []FileInfo
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) || key < startAt {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			return err
		}
		out = append(out, FileInfo{Key: key, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delta: listing %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b FileInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// mkdirAll creates dir and its missing parents like os.MkdirAll, and
// fsyncs the parent of each folder it creates, so that the new folders'
// names (a new partition's year=/month=/day=) are as durable as the files
// later written into them. The folders it creates get mode perm, exactly
// (not reduced by the umask).
func mkdirAll(dir string, perm fs.FileMode) error {
	var missing []string
	for d := dir; ; {
		_, err := os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, d := range missing {
		if err := os.Chmod(d, perm); err != nil {
			return err
		}
	}
	// Top-down; a concurrent writer creating the same folders syncs them
	// too, which is harmless.
	for i := len(missing) - 1; i >= 0; i-- {
		if err := syncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

// createTemp creates a new temporary file beside p (hidden from List),
// with the storage's file mode, and p's folder if missing.
func (s *LocalStorage) createTemp(p string) (*os.File, error) {
	dir := filepath.Dir(p)
	if err := mkdirAll(dir, s.dirMode); err != nil {
		return nil, err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(rnd[:])+"-"+filepath.Base(p))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, s.fileMode)
	if err != nil {
		return nil, err
	}
	// The umask may have taken bits off; the mode is the storage's.
	if err := f.Chmod(s.fileMode); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	return f, nil
}

// writeTemp writes data to a new fsynced temporary file beside p, with
// the storage's file mode.
func (s *LocalStorage) writeTemp(p string, data []byte) (string, error) {
	f, err := s.createTemp(p)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Write implements Storage: temporary file, fsync, rename, fsync folder.
func (s *LocalStorage) Write(ctx context.Context, key string, data []byte) error {
	if err := s.writeUnsynced(ctx, key, data); err != nil {
		return err
	}
	return s.syncDirs(ctx, []string{key})
}

// writeUnsynced is Write but for the folder fsync, which syncDirs does.
func (s *LocalStorage) writeUnsynced(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	tmp, err := s.writeTemp(p, data)
	if err != nil {
		return fmt.Errorf("delta: writing %q: %w", key, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("delta: writing %q: %w", key, err)
	}
	return nil
}

// syncDirs fsyncs the folder of each key, once per folder.
func (s *LocalStorage) syncDirs(ctx context.Context, keys []string) error {
	var done []string
	for _, key := range keys {
		p, err := s.path(key)
		if err != nil {
			return err
		}
		dir := filepath.Dir(p)
		if slices.Contains(done, dir) {
			continue
		}
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("delta: writing %q: %w", key, err)
		}
		done = append(done, dir)
	}
	return nil
}

// spoolFile implements spooler: the temporary file Write would write,
// beside key's file, so that writeSpooled renames it into place.
func (s *LocalStorage) spoolFile(key string) (*os.File, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := s.createTemp(p)
	if err != nil {
		return nil, fmt.Errorf("delta: writing %q: %w", key, err)
	}
	return f, nil
}

// writeSpooled implements spooler: fsync, rename, fsync folder, as Write.
func (s *LocalStorage) writeSpooled(ctx context.Context, key string, f *os.File) error {
	tmp := f.Name()
	err := ctx.Err()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var p string
	if err == nil {
		p, err = s.path(key)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("delta: writing %q: %w", key, err)
	}
	return s.syncDirs(ctx, []string{key})
}

// PutIfAbsent implements Storage: temporary file, fsync, hard link to the
// final name (the atomic existence check), fsync folder.
func (s *LocalStorage) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(p); err == nil {
		return fmt.Errorf("delta: creating %q: %w", key, ErrExist)
	}
	tmp, err := s.writeTemp(p, data)
	if err != nil {
		return fmt.Errorf("delta: creating %q: %w", key, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, p); err != nil {
		return fmt.Errorf("delta: creating %q: %w", key, mapFSError(err))
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("delta: creating %q: %w", key, err)
	}
	return nil
}

// Delete implements Storage.
func (s *LocalStorage) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delta: deleting %q: %w", key, err)
	}
	return nil
}

var (
	_ Storage   = (*LocalStorage)(nil)
	_ dirSyncer = (*LocalStorage)(nil)
	_ spooler   = (*LocalStorage)(nil)
)
