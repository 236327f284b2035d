package cli

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// execEnv set to 1 makes the test binary run as kpipe itself: tests start it
// as a real OS process (kill -9, restarts, lock files) without a go build.
const execEnv = "KPIPE_CLI_TEST_EXEC"

func TestMain(m *testing.M) {
	if os.Getenv(execEnv) == "1" {
		// What cmd/kpipe/main.go does.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		go func() { <-ctx.Done(); stop() }()
		code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// proc is a kpipe process started by a test; its stdout and stderr are kept
// and can be waited on line by line.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	errOut *syncBuffer
	done   chan struct{}
	err    error // of Wait, once done is closed
}

// startKpipe starts "kpipe args..." as an OS process with the extra
// environment variables env. The test's cleanup kills it if still running.
func startKpipe(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{out: &syncBuffer{}, errOut: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Env = append(append(os.Environ(), execEnv+"=1"), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errOut
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitLine waits until stdout holds a line matching re and returns its
// submatches; it fails the test when the process exits first.
func (p *proc) waitLine(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	m, err := p.out.waitFor(t.Context(), re, p.done)
	if err != nil {
		t.Fatalf("waiting for %q: %v\nstdout:\n%s\nstderr:\n%s", re, err, p.out, p.errOut)
	}
	return m
}

// exitCode waits for the process to end and returns its exit code (-1 when
// killed by a signal).
func (p *proc) exitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// lines splits s into its non-empty lines.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
