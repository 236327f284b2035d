package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l, err := acquireLock(dir, "x.lock", "kpipe test")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: dirMode, filepath.Join(dir, "x.lock"): fileMode} {
		checkMode(t, path, want)
	}
	_, err = acquireLock(dir, "x.lock", "kpipe other")
	var ie *InUseError
	if !errors.Is(err, ErrInUse) || !errors.As(err, &ie) {
		t.Fatalf("second lock: got %v, want an InUseError", err)
	}
	if want := "kpipe test (pid " + strconv.Itoa(os.Getpid()) + ")"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q does not name the folder and %q", err, want)
	}
	l.release()
	l, err = acquireLock(dir, "x.lock", "kpipe other")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l.release()
}

// A lock file left by a process that died (no lock held on it) is taken
// over.
func TestLockStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.lock")
	if err := os.WriteFile(path, []byte("kpipe up\n999999999\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	l, err := acquireLock(dir, "x.lock", "kpipe up")
	if err != nil {
		t.Fatalf("stale lock: %v", err)
	}
	defer l.release()
	b, _ := os.ReadFile(path)
	if string(b) != "kpipe up\n"+strconv.Itoa(os.Getpid())+"\n" {
		t.Fatalf("lock file holds %q, want our pid", b)
	}
}

// checkMode fails unless path exists with the permission bits want.
func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Fatalf("%s: mode %v, want %v", path, got, want)
	}
}
