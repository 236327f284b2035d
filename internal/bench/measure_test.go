package bench

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestReadHWM(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status")
	status := "Name:\tkpipe\nVmPeak:\t 2000000 kB\nVmHWM:\t  271360 kB\nVmRSS:\t  250000 kB\n"
	if err := os.WriteFile(p, []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, ok := readHWM(p); !ok || n != 271360*1024 {
		t.Fatalf("readHWM = %d, %v; want %d", n, ok, 271360*1024)
	}
	if err := os.WriteFile(p, []byte("Name:\tzombie\nState:\tZ (zombie)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, ok := readHWM(p); ok {
		t.Fatalf("readHWM of a status without VmHWM = %d, want not ok", n)
	}
	if runtime.GOOS != "linux" {
		return
	}
	// This process's own: at least what it has resident now.
	n, ok := readHWM("/proc/self/status")
	if !ok || n < 1<<20 {
		t.Fatalf("readHWM(/proc/self/status) = %d, %v", n, ok)
	}
}
