package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"kpipe/internal/stack"
)

// liveTerm is kpipe up's terminal: a status block at the bottom, redrawn in
// place, and whole lines (log records, messages) printed above it. One
// mutex orders every write and each write is one Write call of erase, lines
// and block, so a log line never lands inside the block, nor the block
// inside a line.
type liveTerm struct {
	mu      sync.Mutex
	w       io.Writer
	width   int
	block   []string
	drawn   int    // lines of the block on screen
	partial []byte // the unfinished end of what was written above
}

func newLiveTerm(w io.Writer) *liveTerm { return &liveTerm{w: w, width: termWidth(w)} }

// erase appends what takes the drawn block off the screen: up to its
// first line, then clear to the end of the screen.
func (t *liveTerm) erase(buf []byte) []byte {
	if t.drawn == 0 {
		return buf
	}
	buf = fmt.Appendf(buf, "\r\033[%dA\033[J", t.drawn)
	t.drawn = 0
	return buf
}

// draw appends the block, each line cut to the terminal's width (a wrapped
// line would break the erase's count).
func (t *liveTerm) draw(buf []byte) []byte {
	for _, l := range t.block {
		if t.width > 1 && utf8.RuneCountInString(l) >= t.width {
			r := []rune(l)
			l = string(r[:t.width-1])
		}
		buf = append(buf, l...)
		buf = append(buf, '\n')
	}
	t.drawn = len(t.block)
	return buf
}

// Write prints the complete lines of p above the block; an unfinished line
// waits for its end.
func (t *liveTerm) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	end := bytes.LastIndexByte(t.partial, '\n')
	if end < 0 {
		return len(p), nil
	}
	buf := t.erase(nil)
	buf = append(buf, t.partial[:end+1]...)
	t.partial = append(t.partial[:0], t.partial[end+1:]...)
	buf = t.draw(buf)
	if _, err := t.w.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetBlock redraws the block as lines.
func (t *liveTerm) SetBlock(lines []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.block = lines
	buf := t.draw(t.erase(nil))
	_, _ = t.w.Write(buf)
}

// Freeze leaves the block on the screen as it is, as ordinary lines: what
// is written from now on goes below it.
func (t *liveTerm) Freeze() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 {
		buf := append(t.erase(nil), t.partial...)
		buf = t.draw(append(buf, '\n'))
		t.partial = t.partial[:0]
		_, _ = t.w.Write(buf)
	}
	t.block, t.drawn = nil, 0
}

// blockTitle starts the status block's first line; the terminal test
// finds the block by it.
const blockTitle = "── kpipe up"

// statusBlock is the status block of sn after up has run for elapsed.
func statusBlock(sn stack.Snapshot, elapsed time.Duration, table string, stopped bool) []string {
	errs := sn.ErrorsLine()
	if errs == "" {
		errs = "none"
	}
	if sn.StorageErrors > 0 {
		errs += fmt.Sprintf(" · storage: %d commits retried", sn.StorageErrors)
	}
	version := "none yet"
	if sn.TableVersion >= 0 {
		version = fmt.Sprint(sn.TableVersion)
	}
	state := "Ctrl-C to stop"
	if stopped {
		state = "stopped"
	}
	return []string{
		fmt.Sprintf("%s · %s · %s ──────────", blockTitle, elapsed.Truncate(time.Second), state),
		fmt.Sprintf("│ events   generated %d · enriched %d · triggered %d · written %d", sn.Generated, sn.Enriched, sn.Triggered, sn.Written),
		fmt.Sprintf("│ lag      %d", sn.Lag),
		fmt.Sprintf("│ errors   %s", errs),
		fmt.Sprintf("│ table    version %s · %d files written · %s", version, sn.Files, table),
	}
}

// showStatus redraws t's block from s every interval until ctx ends.
func showStatus(ctx context.Context, t *liveTerm, s *stack.Stack, table string, every time.Duration) {
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		t.SetBlock(statusBlock(s.Snapshot(), time.Since(start), table, false))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// upSummary is what kpipe up prints when it stops: what it did and how to
// look at the table.
func upSummary(w io.Writer, sn stack.Snapshot, table string) {
	fmt.Fprintf(w, "\nkpipe up stopped: %d events generated, %d enriched, %d triggered, %d rows written", sn.Generated, sn.Enriched, sn.Triggered, sn.Written)
	if sn.TableVersion >= 0 {
		fmt.Fprintf(w, ", table version %d", sn.TableVersion)
	}
	fmt.Fprintf(w, "\n  table    %s\n", table)
	q := shellQuote(table)
	view := strings.TrimSuffix(table[strings.LastIndexAny(table, `/\`)+1:], "/")
	fmt.Fprintf(w, "  query    kpipe query --table %s \"SELECT task_status, COUNT(*) AS n FROM %s GROUP BY ALL\"\n", q, view)
	fmt.Fprintf(w, "  report   kpipe report --table %s\n", q)
	fmt.Fprintf(w, "  history  kpipe table history %s\n", q)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// consoleHandler filters the records kpipe up shows on its console: the
// Kafka client's (component=kgo) only at --log-level debug (or when they
// are errors); on the live terminal view only warnings, errors and the
// plugins' own lines (their logger carries a "plugin" attribute), so that
// SPEC's "iTel Cabinet task event tracked | …" stays in sight. The log
// file, when there is one, gets every record.
type consoleHandler struct {
	h           slog.Handler
	live, debug bool
	kgo, plugin bool
}

func (c *consoleHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if c.kgo && !c.debug && l < slog.LevelError {
		return false
	}
	if c.live && !c.plugin && l < slog.LevelWarn {
		return false
	}
	return c.h.Enabled(ctx, l)
}

func (c *consoleHandler) Handle(ctx context.Context, r slog.Record) error {
	// The embedded broker's warnings (kafka's kfakeLogger, message
	// "kfake") are chatter too: "EndTxn slow" under load.
	if r.Message == "kfake" && !c.debug && r.Level < slog.LevelError {
		return nil
	}
	return c.h.Handle(ctx, r)
}

func (c *consoleHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *c
	for _, a := range as {
		switch {
		case a.Key == "component" && a.Value.String() == "kgo":
			n.kgo = true
		case a.Key == "plugin":
			n.plugin = true
		}
	}
	n.h = c.h.WithAttrs(as)
	return &n
}

func (c *consoleHandler) WithGroup(name string) slog.Handler {
	n := *c
	n.h = c.h.WithGroup(name)
	return &n
}

// upLogger is kpipe up's logger: the console's (console: the live view or
// stderr) filtered by consoleHandler, and with logFile every record, in
// full, appended to that file as well. close closes the file.
func upLogger(env *Env, console io.Writer, live bool, logFile string) (_ *slog.Logger, closeLog func() error, _ error) {
	base, err := newLogger(console, env.LogFormat, env.LogLevel)
	if err != nil {
		return nil, nil, usage(err)
	}
	var h slog.Handler = &consoleHandler{h: base.Handler(), live: live, debug: strings.EqualFold(env.LogLevel, "debug")}
	closeLog = func() error { return nil }
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, env.FileMode)
		if err != nil {
			return nil, nil, usage(fmt.Errorf("--log-file: %w", err))
		}
		fl, _ := newLogger(f, env.LogFormat, env.LogLevel)
		h = slog.NewMultiHandler(h, fl.Handler())
		closeLog = f.Close
	}
	return slog.New(h), closeLog, nil
}
