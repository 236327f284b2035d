//go:build linux

package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// moduleRoot is the kpipe module's folder, from go env GOMOD.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not inside the kpipe module")
	}
	return filepath.Dir(gomod)
}

// buildKpipe builds the kpipe binary (without -race: the suite tests the
// processes, the race detector runs on the test) into dir.
func buildKpipe(t *testing.T, root, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "kpipe")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kpipe")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kpipe: %v\n%s", err, b)
	}
	return bin
}

// logLine is one line a process wrote, with its JSON fields when it is a
// JSON log line.
type logLine struct {
	at     time.Time
	text   string
	fields map[string]any
}

// exitInfo is an exit the suite did not cause.
type exitInfo struct {
	proc string
	gen  int
	err  string
	tail []string
}

// proc is one kpipe process, restarted by the suite as a supervisor would.
// Every incarnation runs in its own process group, killed in t.Cleanup.
type proc struct {
	name   string
	bin    string
	args   func() []string // arguments of the next start
	env    []string
	cred   *syscall.Credential
	logDir string
	onExit func(exitInfo) // an exit the suite did not cause

	mu      sync.Mutex
	cmd     *exec.Cmd
	gen     int
	started time.Time
	done    chan struct{}
	killing bool
	closed  bool
	tail    []string // last lines of the current incarnation
	addr    string   // metrics address of the current incarnation
	watch   []*watcher
}

type watcher struct {
	match func(logLine) bool
	ch    chan logLine
}

// start starts a new incarnation, unless one runs or the process was
// cleaned up.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("%s: cleaned up", p.name)
	}
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s: already running", p.name)
		}
	}
	p.gen++
	args := p.args()
	cmd := exec.Command(p.bin, args...)
	cmd.Env = p.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	logf, err := os.Create(filepath.Join(p.logDir, fmt.Sprintf("%s.%d.log", p.name, p.gen)))
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	p.cmd, p.started, p.done, p.killing, p.tail, p.addr = cmd, time.Now(), make(chan struct{}), false, nil, ""
	gen, done := p.gen, p.done
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		defer logf.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.line(gen, logf, sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		<-scanned
		p.mu.Lock()
		killed := p.killing && p.gen == gen
		info := exitInfo{proc: p.name, gen: gen, tail: append([]string(nil), p.tail...)}
		if err != nil {
			info.err = err.Error()
		} else {
			info.err = "exit status 0"
		}
		p.mu.Unlock()
		close(done)
		if !killed && p.onExit != nil {
			p.onExit(info)
		}
	}()
	return nil
}

func (p *proc) line(gen int, logf *os.File, s string) {
	fmt.Fprintln(logf, s)
	l := logLine{at: time.Now(), text: s}
	if strings.HasPrefix(s, "{") {
		_ = json.Unmarshal([]byte(s), &l.fields)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.gen {
		return
	}
	p.tail = append(p.tail, s)
	if len(p.tail) > 60 {
		p.tail = p.tail[len(p.tail)-40:]
	}
	if l.fields != nil && l.fields["msg"] == "metrics_serving" {
		p.addr, _ = l.fields["addr"].(string)
	}
	for _, w := range p.watch {
		if w.match(l) {
			select {
			case w.ch <- l:
			default:
			}
		}
	}
}

// startAwait starts a new incarnation and waits for its first line that
// matches (registered before the start, so none is missed).
func (p *proc) startAwait(ctx context.Context, d time.Duration, what string, match func(logLine) bool) (logLine, error) {
	w := &watcher{match: match, ch: make(chan logLine, 1)}
	p.mu.Lock()
	p.watch = append(p.watch, w)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		for i, x := range p.watch {
			if x == w {
				p.watch = append(p.watch[:i], p.watch[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
	}()
	if err := p.start(); err != nil {
		return logLine{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	select {
	case l := <-w.ch:
		return l, nil
	case <-ctx.Done():
		return logLine{}, fmt.Errorf("%s: no %s within %s; last lines:\n%s", p.name, what, d, strings.Join(p.lastLines(15), "\n"))
	}
}

// kill sends SIGKILL to the current incarnation's process group and waits
// for it to end.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil {
		p.mu.Unlock()
		return
	}
	p.killing = true
	p.mu.Unlock()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// stop sends SIGTERM and waits for a clean end (or kills after d).
func (p *proc) stop(d time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil {
		p.mu.Unlock()
		return nil
	}
	p.killing = true
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(d):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s did not stop within %s after SIGTERM", p.name, d)
	}
	if cmd.ProcessState != nil && !cmd.ProcessState.Success() {
		return fmt.Errorf("%s stopped with %s", p.name, cmd.ProcessState)
	}
	return nil
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) metricsAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

func (p *proc) startedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

func (p *proc) lastLines(n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tail[max(0, len(p.tail)-n):]...)
}

// cleanup kills whatever incarnation runs; no other starts after it.
func (p *proc) cleanup() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.killing, p.closed = true, true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// httpc is the suite's HTTP client: short timeouts, so a hung process is a
// failed sample, not a stuck suite.
var httpc = &http.Client{Timeout: 3 * time.Second}

// readyz samples the process's /readyz: code 0 when it did not answer.
func (p *proc) readyz(ctx context.Context) (int, string) {
	addr := p.metricsAddr()
	if addr == "" || !p.running() {
		return 0, "not running"
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// metric returns the sum of the samples of a metric family on the
// process's /metrics, and false when the process did not answer.
func (p *proc) metric(ctx context.Context, name string) (float64, bool) {
	addr := p.metricsAddr()
	if addr == "" {
		return 0, false
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, false
	}
	return sumMetric(b, name), true
}

// sumMetric adds up the samples of one family in Prometheus text format.
func sumMetric(b []byte, name string) float64 {
	var sum float64
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte(name)) {
			continue
		}
		rest := line[len(name):]
		if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		i := bytes.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(string(line[i+1:]), 64); err == nil {
			sum += v
		}
	}
	return sum
}

// runOnce runs a kpipe command to its end and returns its output.
func runOnce(ctx context.Context, bin string, env []string, d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kpipe %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// poll calls cond until it returns true or d passes, and says which.
func poll(ctx context.Context, d, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(every):
		}
	}
}
