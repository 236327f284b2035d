package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath returns the browser to drive: $KPIPE_CHROMIUM, else chromium
// on PATH. Without one the test skips, or fails when CI is set: CI must run
// every test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KPIPE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no chromium on PATH: install Debian's chromium package (apt-get install chromium), or set KPIPE_CHROMIUM to a Chromium or Chrome binary"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so this test does not skip)")
	}
	t.Skip(msg)
	return ""
}

// browser is one headless Chromium with a fresh profile and one tab, and
// the console messages of that tab.
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
}

// newBrowser starts Chromium for the test; it is stopped when the test
// ends.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(t.Context()), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{ctx: ctx}
	// Start the browser, then read the tab's console from its first page on.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.messages = append(b.messages, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// problems returns the console errors and uncaught exceptions so far.
func (b *browser) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.messages {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, m.String()+" at "+m.URL)
		}
	}
	return out
}

// checkConsole fails the test for every console error and exception the
// page wrote, after proving that the console is read: a probe error
// written now must arrive.
func (b *browser) checkConsole(t *testing.T) {
	t.Helper()
	const probe = "kpipe-console-probe"
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](`console.error("`+probe+`")`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var found bool
		var others []string
		for _, p := range b.problems() {
			if strings.Contains(p, probe) {
				found = true
			} else {
				others = append(others, p)
			}
		}
		if found {
			for _, p := range others {
				t.Errorf("console: %s", p)
			}
			b.clear()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the probe console error never arrived: the console is not being read")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.messages = nil
}

// eval evaluates expr in the page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor polls expr in the page until it is truthy. A poll begun just
// after a navigation can run in the execution context the navigation
// replaced ("Cannot find context with specified id"): it is started again
// in the new one, until the same overall timeout.
func waitFor(t *testing.T, b *browser, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := chromedp.Run(b.ctx, chromedp.Poll[any](expr, chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil {
			return
		}
		if strings.Contains(err.Error(), "Cannot find context with specified id") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond) // the new document's context is being created
			continue
		}
		t.Fatalf("waiting for %s (%s): %v\nconsole: %q", what, expr, err, b.problems())
	}
}

// screenshot writes a PNG of the whole page to $KPIPE_SCREENSHOT_DIR or
// the test's temporary folder, and logs where.
func screenshot(t *testing.T, b *browser, name string) string {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("KPIPE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o640); err != nil {
		t.Fatal(err)
	}
	if len(png) < 1000 {
		t.Errorf("screenshot %s is %d bytes: nothing drawn?", path, len(png))
	}
	t.Logf("screenshot: %s", path)
	return path
}
