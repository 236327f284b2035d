package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"kpipe/internal/config"
	"kpipe/internal/pipeline"
	"kpipe/internal/plugin"
)

func init() { register(newConfigCmd) }

// configOptions make the loader check every handler and plugin against
// its registry: its type name and a strict decode of its config block.
func configOptions() []config.Option {
	return []config.Option{config.WithHandlers(pipeline.DefaultRegistry()), config.WithPlugins(plugin.DefaultRegistry())}
}

// loadConfig loads the configuration folder of env (or dir when set). A
// configuration problem is a usage error.
func loadConfig(env *Env, dir string) (*config.Config, error) {
	if dir == "" {
		dir = env.ConfigDir
	}
	opts := append([]config.Option{config.WithEnv(env.Getenv)}, configOptions()...)
	cfg, err := config.Load(dir, opts...)
	if err != nil {
		return nil, usage(err)
	}
	return cfg, nil
}

func newConfigCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check or show the configuration",
	}
	var dir string
	check := &cobra.Command{
		Use:   "check",
		Short: "Load and validate every configuration file, then summarise it",
		Long: `Load the plugins, workers and connections under the configuration folder,
expand ${VAR} and ${VAR:default} from the environment, and validate them.

Exits 0 and prints a summary when everything is valid; exits 2 and lists every
problem as file:line:column: message otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(env, dir)
			if err != nil {
				return err
			}
			printSummary(env.Stdout, cfg)
			return nil
		},
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration, secrets redacted",
		Long: `Print the configuration as kpipe sees it after expanding environment
variables and applying defaults. Tokens and passwords are printed as
[REDACTED].`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(env, dir)
			if err != nil {
				return err
			}
			out, err := yaml.MarshalWithOptions(cfg, yaml.Indent(2), yaml.IndentSequence(true))
			if err != nil {
				return fmt.Errorf("encoding configuration: %w", err)
			}
			_, err = env.Stdout.Write(out)
			return err
		},
	}
	for _, c := range []*cobra.Command{check, show} {
		c.Flags().StringVar(&dir, "dir", "", "configuration folder (default: --config-dir)")
		cmd.AddCommand(c)
	}
	return cmd
}

func printSummary(w io.Writer, cfg *config.Config) {
	fmt.Fprintf(w, "configuration OK: %s\n", cfg.Dir)
	fmt.Fprintf(w, "\nplugins (%d):\n", len(cfg.Plugins))
	for _, p := range cfg.Plugins {
		state := "enabled"
		if !p.Enabled {
			state = "disabled"
		}
		fmt.Fprintf(w, "  %s  %s, %s, priority %d\n", p.Name, p.Kind(), state, p.Priority)
		if p.Kind() != plugin.KindTaskTrigger {
			continue
		}
		tc, err := plugin.DecodeTaskTrigger(p)
		if err != nil {
			continue // Load reported it
		}
		ids := make([]int64, 0, len(tc.Triggers))
		for id := range tc.Triggers {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			t := tc.Triggers[id]
			fmt.Fprintf(w, "    trigger %d %q\n", id, t.Name)
			if t.OnAny != nil {
				fmt.Fprintf(w, "      on_any: %s\n", describeActions(t.OnAny))
			}
			statuses := make([]string, 0, len(t.OnStatus))
			for s := range t.OnStatus {
				statuses = append(statuses, s)
			}
			sort.Strings(statuses)
			for _, s := range statuses {
				fmt.Fprintf(w, "      on_%s: %s\n", s, describeActions(t.OnStatus[s]))
			}
		}
	}
	fmt.Fprintf(w, "\nworkers (%d):\n", len(cfg.Workers))
	for _, wk := range cfg.Workers {
		chain := make([]string, len(wk.EnrichmentHandlers))
		for i, h := range wk.EnrichmentHandlers {
			chain[i] = h.Type
			if c, _, ok := h.Field("connection"); ok {
				chain[i] += "(" + c + ")"
			}
		}
		fmt.Fprintf(w, "  %s  %s -> %s\n", wk.Name, wk.InputTopic, strings.Join(chain, " -> "))
		fmt.Fprintf(w, "    group %s, batch %d", wk.ConsumerGroup, wk.BatchSize)
		if wk.SuccessTopic != "" {
			fmt.Fprintf(w, ", success %s", wk.SuccessTopic)
		}
		if wk.ErrorTopic != "" {
			fmt.Fprintf(w, ", errors %s", wk.ErrorTopic)
		}
		fmt.Fprintln(w)
	}
	names := make([]string, 0, len(cfg.Connections))
	for n := range cfg.Connections {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "\nconnections (%d):\n", len(names))
	for _, n := range names {
		c := cfg.Connections[n]
		fmt.Fprintf(w, "  %s  %s, auth %s, timeout %gs, %d retries\n", n, c.BaseURL, c.AuthType, c.TimeoutSeconds, c.MaxRetries)
	}
}

func describeActions(a *plugin.Actions) string {
	var parts []string
	if a.PublishToTopic != "" {
		parts = append(parts, "publish to "+a.PublishToTopic)
	}
	if a.Log != nil {
		parts = append(parts, "log at "+a.Log.Level)
	}
	return strings.Join(parts, ", ")
}
