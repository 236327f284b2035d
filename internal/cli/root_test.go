package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestExitCodes: the code comes from the error's type, whatever its text.
func TestExitCodes(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want int
	}{
		{nil, ExitUsage},
		{[]string{"help"}, ExitOK},
		{[]string{"--help"}, ExitOK},
		{[]string{"topics"}, ExitUsage},
		{[]string{"nosuchcommand"}, ExitUsage},
		{[]string{"tpoics"}, ExitUsage},
		{[]string{"up", "--no-such-flag"}, ExitUsage},
		{[]string{"up", "--events", "x"}, ExitUsage},
		{[]string{"up", "extra-arg"}, ExitUsage},
		{[]string{"worker"}, ExitUsage},
		{[]string{"--log-level", "loud", "sim"}, ExitUsage},
	} {
		code, out, errOut := runCLI(t, nil, append([]string{"--config-dir", repoConfig()}, tt.args...)...)
		if code != tt.want {
			t.Errorf("kpipe %v: exit %d, want %d\n%s%s", tt.args, code, tt.want, out, errOut)
		}
	}
	code, _, errOut := runCLI(t, nil, "tpoics")
	if code != ExitUsage || !strings.Contains(errOut, "did you mean topics") {
		t.Errorf("kpipe tpoics: exit %d, %s", code, errOut)
	}

	// An argument error shows the command's usage.
	code, _, errOut = runCLI(t, nil, "--config-dir", repoConfig(), "worker")
	if code != ExitUsage || !strings.Contains(errOut, "accepts 1 arg(s), received 0") || !strings.Contains(errOut, "Usage:\n  kpipe worker") {
		t.Errorf("kpipe worker: exit %d, want its usage after the error:\n%s", code, errOut)
	}

	// Text that looks like a usage error does not make one, and a wrapped
	// usage error stays one.
	if got := exitCode(errors.New("unknown flag: accepts 1 arg(s), required flag")); got != ExitFailure {
		t.Errorf("plain error: exit %d, want %d", got, ExitFailure)
	}
	if got := exitCode(fmt.Errorf("loading: %w", usage(errors.New("bad")))); got != ExitUsage {
		t.Errorf("wrapped usage error: exit %d, want %d", got, ExitUsage)
	}
}
