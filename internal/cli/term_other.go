//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cli

import "io"

// isTerminal reports false where kpipe cannot ask: plain lines.
func isTerminal(any) bool { return false }

// termWidth is 0: unknown.
func termWidth(io.Writer) int { return 0 }
