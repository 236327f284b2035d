package cli

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestGCHeadroomSettings checks where --gc-headroom comes from: the flag
// over $KPIPE_GC_HEADROOM over the default, and that bad values are usage
// errors that say what is wanted.
func TestGCHeadroomSettings(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		env     map[string]string
		tuned   bool
		wantErr string
	}{
		{name: "default", tuned: true},
		{name: "flag off", args: []string{"--gc-headroom", "0"}},
		{name: "env off", env: map[string]string{"KPIPE_GC_HEADROOM": "0"}},
		{name: "flag over env", args: []string{"--gc-headroom", "0.3"}, env: map[string]string{"KPIPE_GC_HEADROOM": "nope"}, tuned: true},
		{name: "GOMEMLIMIT wins", env: map[string]string{"GOMEMLIMIT": "300MiB"}},
		{name: "GOGC wins", env: map[string]string{"GOGC": "200"}},
		{name: "bad env", env: map[string]string{"KPIPE_GC_HEADROOM": "nope"}, wantErr: `KPIPE_GC_HEADROOM="nope": not a number`},
		{name: "negative", args: []string{"--gc-headroom", "-1"}, wantErr: "want a fraction from 0 (off)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var h float64
			var tuned bool
			cmd := &cobra.Command{Use: "x", RunE: func(cmd *cobra.Command, _ []string) error {
				env := &Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Getenv: func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }}
				stop, ok, err := startGCTuning(cmd, env, h, env.Logger)
				if err != nil {
					return err
				}
				stop()
				tuned = ok
				return nil
			}}
			addGCHeadroomFlag(cmd, &h)
			cmd.SetArgs(c.args)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, c.wantErr)
				}
				if _, ok := err.(*usageError); !ok {
					t.Fatalf("error %T, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tuned != c.tuned {
				t.Fatalf("tuned %v, want %v", tuned, c.tuned)
			}
		})
	}
}
