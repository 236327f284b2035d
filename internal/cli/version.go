package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"kpipe/internal/delta"
)

func init() { register(newVersionCmd) }

func newVersionCmd(env *Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print kpipe's version, the commit it was built from and the Go version",
		Long: `Print kpipe's version: the module version of "go install kpipe@vX.Y.Z", or
dev+<commit> (with -dirty for uncommitted changes) for a build from a checkout,
or what the build set with -ldflags "-X kpipe/internal/delta.Version=...".
Every Delta commit kpipe writes carries it in commitInfo.engineInfo as
kpipe/<version> (see kpipe table history).`,
		Example: `  kpipe version
  kpipe version --json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := map[string]string{"version": delta.Version, "engine_info": delta.EngineInfo(), "go": runtime.Version(),
				"os_arch": runtime.GOOS + "/" + runtime.GOARCH}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					switch s.Key {
					case "vcs.revision":
						v["commit"] = s.Value
					case "vcs.time":
						v["commit_time"] = s.Value
					case "vcs.modified":
						v["modified"] = s.Value
					}
				}
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			fmt.Fprintf(env.Stdout, "kpipe %s (%s, %s)\n", v["version"], v["go"], v["os_arch"])
			if c := v["commit"]; c != "" {
				fmt.Fprintf(env.Stdout, "commit %s %s", c, v["commit_time"])
				if v["modified"] == "true" {
					fmt.Fprint(env.Stdout, " (with uncommitted changes)")
				}
				fmt.Fprintln(env.Stdout)
			}
			fmt.Fprintf(env.Stdout, "Delta commits: engineInfo %q\n", v["engine_info"])
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
