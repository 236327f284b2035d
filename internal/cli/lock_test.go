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
	l, err := acquireLock(&Env{}, dir, "x.lock", "kpipe test")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: dirMode, filepath.Join(dir, "x.lock"): fileMode} {
		checkMode(t, path, want)
	}
	_, err = acquireLock(&Env{}, dir, "x.lock", "kpipe other")
	var ie *InUseError
	if !errors.Is(err, ErrInUse) || !errors.As(err, &ie) {
		t.Fatalf("second lock: got %v, want an InUseError", err)
	}
	if want := "kpipe test (pid " + strconv.Itoa(os.Getpid()) + ")"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q does not name the folder and %q", err, want)
	}
	l.release()
	l, err = acquireLock(&Env{}, dir, "x.lock", "kpipe other")
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
	l, err := acquireLock(&Env{}, dir, "x.lock", "kpipe up")
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

// --file-mode and --dir-mode set what kpipe creates; a mode that would
// lock kpipe out of its own files is refused before the command runs.
func TestFileModeFlags(t *testing.T) {
	loc := filepath.Join(t.TempDir(), "table")
	code, _, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "--file-mode", "0600", "--dir-mode", "0700", "table", "create", "--location", loc)
	if code != ExitOK {
		t.Fatalf("table create: exit %d: %s", code, errOut)
	}
	checkMode(t, loc, 0o700)
	checkMode(t, filepath.Join(loc, "_delta_log"), 0o700)
	checkMode(t, filepath.Join(loc, "_delta_log", "00000000000000000000.json"), 0o600)

	for _, args := range [][]string{
		{"--file-mode", "0444"},
		{"--file-mode", "rw-r-----"},
		{"--dir-mode", "0600"},
		{"--dir-mode", "01777"},
	} {
		code, _, errOut := runCLI(t, nil, append(args, "--config-dir", repoConfig(), "table", "create", "--location", filepath.Join(t.TempDir(), "t"))...)
		if code != ExitUsage || !strings.Contains(errOut, args[0]) {
			t.Errorf("%v: exit %d, want %d naming the flag: %s", args, code, ExitUsage, errOut)
		}
	}
}
