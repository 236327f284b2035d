// Package browsertest loads kpipe's pages in a real browser: the live page
// of a running stack's metrics endpoint (internal/metrics) and the HTML
// report (kpipe report --format html). It holds no code, only tests:
//
//	go test ./internal/browsertest/
//
// The tests drive Debian's Chromium (package chromium; .ci/run installs
// it) through the DevTools protocol (chromedp), headless, with a fresh
// profile and no network beyond the loopback pages. Each page must load
// with no console error or uncaught exception and show the numbers the
// metrics and the report hold; screenshots are written to
// $KPIPE_SCREENSHOT_DIR, or to the test's temporary folder. Without a
// chromium on PATH (or $KPIPE_CHROMIUM) the tests skip, unless the
// environment variable CI is set, in which case they fail.
package browsertest
