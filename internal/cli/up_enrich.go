package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"kpipe/internal/claimx"
	"kpipe/internal/config"
	"kpipe/internal/enrich"
	"kpipe/internal/kafka"
	"kpipe/internal/metrics"
	"kpipe/internal/plugin"
)

// claimxConnection is the named connection the enrichment worker uses.
const claimxConnection = "claimx_api"

// newEnricher builds the enrichment worker from the configuration: the
// claimx_api connection and the enabled plugins.
func newEnricher(ctx context.Context, cfg *config.Config, kcfg kafka.Config, m *metrics.Metrics, log *slog.Logger) (*enrich.Worker, error) {
	conn, ok := cfg.Connections[claimxConnection]
	if !ok {
		return nil, usage(fmt.Errorf("the enrichment worker needs the connection %q in %s/plugins/shared/connections/", claimxConnection, cfg.Dir))
	}
	client, err := claimx.NewClient(conn, claimx.WithMetrics(m), claimx.WithLogger(log))
	if err != nil {
		return nil, err
	}
	orch, err := plugin.NewOrchestrator(ctx, plugin.DefaultRegistry(), cfg.EnabledPlugins(), plugin.Deps{Logger: log, Metrics: m})
	if err != nil {
		return nil, err
	}
	return enrich.New(enrich.Options{Kafka: kcfg, Fetcher: client, Orchestrator: orch, Metrics: m, Logger: log})
}

// running tracks whether a long-running component is in its Run loop, for
// /readyz.
type running struct {
	name string
	on   atomic.Bool
}

// run calls f with the flag set while it runs.
func (r *running) run(f func() error) func() error {
	return func() error {
		r.on.Store(true)
		defer r.on.Store(false)
		return f()
	}
}

// ready reports every component that is not running.
func ready(rs ...*running) error {
	var errs []error
	for _, r := range rs {
		if !r.on.Load() {
			errs = append(errs, fmt.Errorf("%s is not running", r.name))
		}
	}
	return errors.Join(errs...)
}
