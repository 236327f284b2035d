package bench

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestReadMemStatus(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status")
	status := "Name:\tkpipe\nVmPeak:\t 2000000 kB\nVmHWM:\t  271360 kB\nVmRSS:\t  250000 kB\nRssAnon:\t  210000 kB\nRssFile:\t   40000 kB\nRssShmem:\t       0 kB\n"
	if err := os.WriteFile(p, []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	want := memStatus{HWM: 271360 << 10, RSS: 250000 << 10, Anon: 210000 << 10, File: 40000 << 10}
	if m, ok := readMemStatus(p); !ok || m != want {
		t.Fatalf("readMemStatus = %+v, %v; want %+v", m, ok, want)
	}
	if err := os.WriteFile(p, []byte("Name:\tzombie\nState:\tZ (zombie)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, ok := readMemStatus(p); ok {
		t.Fatalf("readMemStatus of a status without VmHWM = %+v, want not ok", m)
	}
	if runtime.GOOS != "linux" {
		return
	}
	// This process's own: at least what it has resident now.
	m, ok := readMemStatus("/proc/self/status")
	if !ok || m.RSS < 1<<20 || m.HWM < m.RSS || m.Anon+m.File > m.RSS {
		t.Fatalf("readMemStatus(/proc/self/status) = %+v, %v", m, ok)
	}
}
