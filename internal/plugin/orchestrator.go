package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"kpipe/internal/config"
	"kpipe/internal/metrics"
)

// Deps are what plugins are built with.
type Deps struct {
	// Logger is the base logger; each plugin gets it With("plugin", name).
	// Nil discards logs.
	Logger *slog.Logger
	// Metrics records plugin metrics. Nil registers them on a private
	// registry (tests).
	Metrics *metrics.Metrics
}

func (d Deps) withDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New(prometheus.NewRegistry())
	}
	return d
}

// Orchestrator runs the enabled plugins, in priority order, over each
// enriched event. One failing plugin does not stop the others: its error is
// counted (kpipe_plugin_errors_total) and returned, as a *PluginError, and
// the records it added for that event are dropped. The caller records the
// failure (the enrichment worker sends the event to its error topic); the
// orchestrator does not log it. Handle is safe for concurrent use.
type Orchestrator struct {
	plugins []Plugin
	names   []string
	m       *metrics.Metrics
	log     *slog.Logger

	errors    []prometheus.Counter
	published []prometheus.Counter
	pubErrors []prometheus.Counter
}

// NewOrchestrator builds every enabled plugin of plugins (already sorted by
// priority, as config.Config.Plugins is). Any plugin that fails to build
// fails the whole, with every problem joined; plugins already built are
// closed.
func NewOrchestrator(ctx context.Context, reg *Registry, plugins []*config.Plugin, deps Deps) (*Orchestrator, error) {
	deps = deps.withDefaults()
	o := &Orchestrator{m: deps.Metrics, log: deps.Logger}
	var errs []error
	for _, p := range plugins {
		if !p.Enabled {
			continue
		}
		pl, err := reg.New(p, deps)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o.plugins = append(o.plugins, pl)
		o.names = append(o.names, pl.Name())
		o.errors = append(o.errors, o.m.PluginErrors.WithLabelValues(pl.Name()))
		o.published = append(o.published, o.m.PluginEventsPublished.WithLabelValues(pl.Name()))
		o.pubErrors = append(o.pubErrors, o.m.PluginPublishErrors.WithLabelValues(pl.Name()))
	}
	if err := errors.Join(errs...); err != nil {
		_ = o.Close(ctx)
		return nil, err
	}
	return o, nil
}

// Names returns the running plugins' names, in the order they run.
func (o *Orchestrator) Names() []string { return slices.Clone(o.names) }

// PluginError is the failure of one plugin on one event.
type PluginError struct {
	// Plugin is the plugin's name.
	Plugin string
	// Err is what it returned (or its panic).
	Err error
}

// Error implements error.
func (e *PluginError) Error() string { return "plugin " + e.Plugin + ": " + e.Err.Error() }

// Unwrap returns the plugin's error.
func (e *PluginError) Unwrap() error { return e.Err }

// Handle runs every plugin over ev, collecting their records in out. It
// returns nil when every plugin succeeded, else the failures, one
// *PluginError per failed plugin (joined with errors.Join when several).
func (o *Orchestrator) Handle(ctx context.Context, ev *Enriched, out *Output) error {
	var first error
	var more []error
	for i, p := range o.plugins {
		n := out.Len()
		out.owner = int32(i)
		if err := safeHandle(ctx, p, ev, out); err != nil {
			out.truncate(n)
			o.errors[i].Inc()
			pe := &PluginError{Plugin: o.names[i], Err: err}
			if first == nil {
				first = pe
			} else {
				more = append(more, pe)
			}
		}
	}
	if more != nil {
		return errors.Join(append([]error{first}, more...)...)
	}
	return first
}

// safeHandle turns a plugin panic into an error, so one bad plugin cannot
// take the worker down.
func safeHandle(ctx context.Context, p Plugin, ev *Enriched, out *Output) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plugin panicked: %v", r)
		}
	}()
	return p.Handle(ctx, ev, out)
}

// Published records that out's records were published (their transaction
// committed): itel_plugin_events_published_total per plugin.
func (o *Orchestrator) Published(out *Output) { o.count(out, o.published) }

// PublishFailed records that out's records could not be published:
// itel_plugin_publish_errors_total per plugin.
func (o *Orchestrator) PublishFailed(out *Output) { o.count(out, o.pubErrors) }

func (o *Orchestrator) count(out *Output, cs []prometheus.Counter) {
	if len(cs) == 0 {
		return
	}
	if len(cs) == 1 {
		if n := len(out.owners); n > 0 {
			cs[0].Add(float64(n))
		}
		return
	}
	counts := make([]int, len(cs))
	for _, w := range out.owners {
		counts[w]++
	}
	for i, n := range counts {
		if n > 0 {
			cs[i].Add(float64(n))
		}
	}
}

// Close closes every plugin, joining their errors.
func (o *Orchestrator) Close(ctx context.Context) error {
	var errs []error
	for i, p := range o.plugins {
		if err := p.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("closing plugin %q: %w", o.names[i], err))
		}
	}
	return errors.Join(errs...)
}
