package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"kpipe/internal/delta"
	"kpipe/internal/stack"
)

// Default file modes of what kpipe creates (--file-mode, --dir-mode):
// owner read-write, group read, nothing for others.
const (
	fileMode os.FileMode = 0o640
	dirMode  os.FileMode = 0o750
)

// ErrInUse means another running kpipe process holds a data folder (or a
// Kafka identity) this one needs; it is the stack's, which reports consumer
// groups in use with the same error.
var ErrInUse = stack.ErrInUse

// InUseError tells which process holds what: a lock file in a data folder,
// or a consumer group with live members.
type InUseError = stack.InUseError

// dirLock is an exclusive advisory lock on a file in a data folder, held
// while the process runs. The kernel drops it when the process dies (even by
// kill -9), so a lock file left by a dead process is taken over at once; the
// file keeps the holder's pid only to name it in the error.
type dirLock struct {
	f    *os.File
	path string
}

// acquireLock creates dir (env.DirMode) when missing and locks dir/name
// (env.FileMode) for what ("kpipe up"). When another live process holds it
// the error is an *InUseError naming that process's pid.
func acquireLock(env *Env, dir, name, what string) (*dirLock, error) {
	if err := os.MkdirAll(dir, modeOr(env.DirMode, dirMode)); err != nil {
		return nil, fmt.Errorf("creating data folder: %w", err)
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, modeOr(env.FileMode, fileMode))
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if held {
		owner := readLockOwner(path)
		f.Close()
		return nil, &InUseError{
			What: "data folder " + dir,
			By:   owner,
			Hint: "stop it first, or give this one another data folder (lock file " + path + ")",
		}
	}
	werr := f.Truncate(0)
	if werr == nil {
		_, werr = f.WriteAt([]byte(what+"\n"+strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if werr != nil {
		unlock(f)
		f.Close()
		return nil, fmt.Errorf("writing lock file %s: %w", path, werr)
	}
	return &dirLock{f: f, path: path}, nil
}

// readLockOwner describes the process named in a lock file.
func readLockOwner(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "another process"
	}
	var what, pid string
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		switch i {
		case 0:
			what = strings.TrimSpace(l)
		case 1:
			pid = strings.TrimSpace(l)
		}
	}
	switch {
	case what != "" && pid != "":
		return fmt.Sprintf("%s (pid %s)", what, pid)
	case what != "":
		return what
	default:
		return "another process"
	}
}

// release empties the lock file and drops the lock. The file stays: removing
// it would let a process that opened it just before lock a file nobody else
// sees.
func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	unlock(l.f)
	l.f.Close()
	l.f = nil
}

// modeOr is m, or def when m is unset (an Env built without flags: tests).
func modeOr(m, def os.FileMode) os.FileMode {
	if m == 0 {
		return def
	}
	return m
}

// storageOptions are the delta storage options of --file-mode and
// --dir-mode.
func (env *Env) storageOptions() []delta.StorageOption {
	return []delta.StorageOption{delta.WithFileMode(modeOr(env.FileMode, fileMode)), delta.WithDirMode(modeOr(env.DirMode, dirMode))}
}
