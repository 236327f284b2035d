package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ptySecondsEnv sets how long TestUpLiveView lets kpipe up run (default
// 20 s).
const ptySecondsEnv = "KPIPE_PTY_SECONDS"

// TestUpLiveView runs the built kpipe binary's "kpipe up" on a
// pseudo-terminal, as a user would, for about 20 s, then types Ctrl-C. On
// the terminal the status block is redrawn in place and never interleaved
// with log lines, the plugin's SPEC line shows above it, the Kafka
// client's lines do not (the --log-file has them), and Ctrl-C exits 0 with
// the summary naming the table and the commands to query it.
func TestUpLiveView(t *testing.T) {
	if testing.Short() {
		t.Skip("runs kpipe up for 20 s")
	}
	secs := 20
	if v := os.Getenv(ptySecondsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", ptySecondsEnv, v, err)
		}
		secs = n
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kpipe")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg, err := filepath.Abs("../../config")
	if err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "up.log")
	cmd := exec.Command(bin, "--config-dir", cfg, "up", "--data", filepath.Join(dir, "data"),
		"--kafka-port", "0", "--metrics-addr", "127.0.0.1:0", "--log-file", logFile)
	cmd.Env = append(os.Environ(), "KPIPE_LOG_LEVEL=info")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		b := make([]byte, 32<<10)
		for {
			n, err := tty.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	output := func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }

	// Run for secs, and until the plugin has logged a line.
	plugin := "iTel Cabinet task event tracked | event_id="
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) || !strings.Contains(output(), plugin) {
		select {
		case err := <-done:
			t.Fatalf("kpipe up ended by itself: %v\n%s", err, output())
		case <-t.Context().Done():
			t.Fatalf("no plugin line:\n%s", output())
		case <-tick.C:
		}
	}
	// Ctrl-C, typed: the terminal sends SIGINT to kpipe up.
	if _, err := tty.Write([]byte{3}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Fatalf("kpipe up after Ctrl-C: %v\n%s", err, output())
		}
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		t.Fatalf("kpipe up did not stop after Ctrl-C:\n%s", output())
	}
	tty.Close()
	<-copied
	out := output()
	if err := os.WriteFile(filepath.Join(dir, "terminal.out"), []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	checkLiveView(t, out)

	text := strings.ReplaceAll(out, "\r\n", "\n")
	for _, want := range []string{plugin, "kpipe up stopped:", "kpipe query --table ", "kpipe report --table ", "itel_cabinet_task_tracking"} {
		if !strings.Contains(text, want) {
			t.Errorf("the terminal lacks %q", want)
		}
	}
	if strings.Contains(text, "component=kgo") {
		t.Error("the Kafka client's lines are on the terminal")
	}
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte("component=kgo")) || !bytes.Contains(log, []byte(plugin)) {
		t.Errorf("the log file lacks the Kafka client's or the plugin's lines (%d bytes)", len(log))
	}
}

// blockLine matches the lines of the status block.
var blockLine = regexp.MustCompile(`^(── kpipe up · |│ events   |│ lag      |│ errors   |│ table    )`)

// eraseBlock is how the live view takes its block off the screen.
var eraseBlock = regexp.MustCompile(`\r\x1b\[(\d+)A\x1b\[J`)

// checkLiveView checks the terminal output: between two erasures of the
// block there are whole lines above, then the whole block (its five lines,
// in order) and nothing after it; no line outside a block is a block line,
// and no log line holds a block line's text.
func checkLiveView(t *testing.T, out string) {
	t.Helper()
	chunks := eraseBlock.Split(out, -1)
	erases := eraseBlock.FindAllStringSubmatch(out, -1)
	if len(erases) < 10 {
		t.Fatalf("the block was redrawn %d times", len(erases))
	}
	for _, e := range erases {
		if e[1] != "5" {
			t.Fatalf("an erase of %s lines, want the block's 5", e[1])
		}
	}
	cutAtCtrlC := false
	for i, c := range chunks {
		c = strings.ReplaceAll(c, "\r\n", "\n")
		ls := strings.Split(c, "\n")
		title := -1
		for j, l := range ls {
			if strings.HasPrefix(l, "── kpipe up · ") {
				title = j
				break
			}
			if blockLine.MatchString(l) || strings.Contains(l, "── kpipe up") {
				t.Fatalf("chunk %d: a block line outside the block: %q\n%s", i, l, c)
			}
		}
		if i == 0 && title < 0 {
			continue // the start banner, before the first block
		}
		if title < 0 {
			if i == len(chunks)-1 {
				continue
			}
			t.Fatalf("chunk %d between two erasures has no block:\n%q", i, c)
		}
		if len(ls) < title+5 {
			// The terminal discards the output still queued when Ctrl-C
			// makes it send SIGINT (termios NOFLSH unset): a block being
			// drawn then, and only that one, ends at the ^C echo.
			if strings.HasSuffix(strings.TrimSpace(c), "^C") && !cutAtCtrlC {
				cutAtCtrlC = true
				continue
			}
			t.Fatalf("chunk %d: the block is cut:\n%q", i, c)
		}
		for k := 1; k < 5; k++ {
			if !blockLine.MatchString(ls[title+k]) {
				t.Fatalf("chunk %d: line %d of the block is %q:\n%q", i, k+1, ls[title+k], c)
			}
		}
		// After the block: nothing (the next erase follows), the ^C echo,
		// or, in the last chunk only, what kpipe up prints when it stops.
		rest := strings.TrimSpace(strings.Join(ls[title+5:], "\n"))
		if i < len(chunks)-1 && rest != "" && rest != "^C" {
			t.Fatalf("chunk %d: %q after the block before it is erased:\n%q", i, rest, c)
		}
		if i == len(chunks)-1 && !strings.Contains(rest, "kpipe up stopped:") {
			t.Fatalf("the last block is not followed by the summary:\n%q", c)
		}
	}
}
