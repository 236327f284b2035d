//go:build noduckdb

package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// Built with -tags noduckdb, kpipe leaves DuckDB out (a worker binary
// without cgo and ~14 MiB less resident, see docs/architecture.md, "The
// lean build"): kpipe query and kpipe report, the only commands that need
// it, say so and how to get them.
func init() {
	register(func(*Env) *cobra.Command { return withoutDuckDB("query", queryShort) })
	register(func(*Env) *cobra.Command { return withoutDuckDB("report", reportShort) })
}

func withoutDuckDB(name, short string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              short + " (not in this build: -tags noduckdb)",
		DisableFlagParsing: true,
		Args:               cobra.ArbitraryArgs,
		RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("%s needs DuckDB, and this kpipe was built without it (-tags noduckdb, the lean worker build); run it with a kpipe built without that tag: go build ./cmd/kpipe", name)
		},
	}
}
