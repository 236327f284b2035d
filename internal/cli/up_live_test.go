package cli

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"kpipe/internal/stack"
)

// TestLiveTermWrites: a line written above the block erases it, prints
// the line and redraws the block, in one write; an unfinished line waits
// for its end; Freeze leaves the block as it is.
func TestLiveTermWrites(t *testing.T) {
	var out bytes.Buffer
	lt := &liveTerm{w: &out, width: 20}
	lt.SetBlock([]string{"block one", "a line longer than twenty columns"})
	if got := out.String(); got != "block one\na line longer than \n" {
		t.Fatalf("first draw %q", got)
	}
	out.Reset()
	if _, err := lt.Write([]byte("half")); err != nil || out.Len() != 0 {
		t.Fatalf("an unfinished line was written: %q", out.String())
	}
	if _, err := lt.Write([]byte(" a line\nnext")); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "\r\033[2A\033[Jhalf a line\nblock one\na line longer than \n"; got != want {
		t.Fatalf("write above the block: %q, want %q", got, want)
	}
	out.Reset()
	lt.Freeze()
	if got, want := out.String(), "\r\033[2A\033[Jnext\nblock one\na line longer than \n"; got != want {
		t.Fatalf("freeze: %q, want %q", got, want)
	}
	out.Reset()
	if _, err := lt.Write([]byte("after\n")); err != nil || out.String() != "after\n" {
		t.Fatalf("after freeze: %q %v", out.String(), err)
	}
}

// TestConsoleHandler: on the live view only warnings and the plugins'
// lines show, the Kafka client's lines only at debug; off the terminal
// every record at the level but the Kafka client's.
func TestConsoleHandler(t *testing.T) {
	for _, tt := range []struct {
		name        string
		live, debug bool
		want        []string
		not         []string
	}{
		{"live", true, false, []string{"plugin_line", "a_warning", "kgo_error"}, []string{"an_info", "kgo_info", "kfake"}},
		{"plain", false, false, []string{"plugin_line", "a_warning", "an_info", "kgo_error"}, []string{"kgo_info", "kfake"}},
		{"debug", false, true, []string{"plugin_line", "an_info", "kgo_info", "kfake"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			level := slog.LevelInfo
			if tt.debug {
				level = slog.LevelDebug
			}
			log := slog.New(&consoleHandler{h: slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}), live: tt.live, debug: tt.debug})
			log.With("plugin", "itel_cabinet_api").Info("plugin_line")
			log.Warn("a_warning")
			log.Info("an_info")
			kgo := log.With("component", "kgo")
			kgo.Info("kgo_info")
			kgo.Error("kgo_error")
			log.Warn("kfake", "detail", "txn: EndTxn slow")
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), "msg="+w) {
					t.Errorf("%s missing:\n%s", w, buf.String())
				}
			}
			for _, n := range tt.not {
				if strings.Contains(buf.String(), "msg="+n) {
					t.Errorf("%s shown:\n%s", n, buf.String())
				}
			}
		})
	}
}

// TestStatusBlock: the block names what it counts.
func TestStatusBlock(t *testing.T) {
	b := statusBlock(stack.Snapshot{Generated: 10, Enriched: 9, Triggered: 4, Written: 3, Lag: 1, Errors: map[string]int64{"validation": 2},
		StorageErrors: 1, TableVersion: 7, Files: 8}, 65*time.Second, "data/delta/t", false)
	got := strings.Join(b, "\n")
	for _, want := range []string{"── kpipe up · 1m5s · Ctrl-C to stop", "generated 10 · enriched 9 · triggered 4 · written 3", "lag      1",
		"validation=2 · storage: 1 commits retried", "version 7 · 8 files written · data/delta/t"} {
		if !strings.Contains(got, want) {
			t.Errorf("block lacks %q:\n%s", want, got)
		}
	}
}

// TestUpInterruptedWhileStarting: SIGINT while kpipe up is still starting
// (its first log line is out, the broker and the workers are not) exits 0.
func TestUpInterruptedWhileStarting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kpipe up")
	}
	p := startKpipe(t, nil, "--config-dir", repoConfig(), "up", "--data", t.TempDir(), "--kafka-port", "0", "--metrics-addr", "127.0.0.1:0")
	if _, err := p.errOut.waitFor(t.Context(), regexp.MustCompile(`msg=`), p.done); err != nil {
		t.Fatalf("no log line: %v\n%s", err, p.errOut)
	}
	p.signal(t, os.Interrupt)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatal("kpipe up did not stop")
	}
	if code := p.exitCode(); code != ExitOK {
		t.Fatalf("exit %d after SIGINT while starting\nstdout:\n%s\nstderr:\n%s", code, p.out, p.errOut)
	}
}
