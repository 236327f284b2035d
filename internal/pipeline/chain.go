package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kpipe/internal/config"
	"kpipe/internal/metrics"
)

// Chain is a worker's handlers in order, each wrapped in the observing
// decorator. It is safe for concurrent use by one goroutine per partition.
type Chain struct {
	stages  []*observed
	flusher Flusher
}

// BuildChain builds the handlers of specs with reg, in order. If one fails,
// the ones already built are closed.
func BuildChain(ctx context.Context, reg *Registry, specs []*config.HandlerSpec, deps Deps) (*Chain, error) {
	deps = deps.withDefaults()
	hs := make([]Handler, 0, len(specs))
	names := make([]string, 0, len(specs))
	for _, spec := range specs {
		h, err := reg.New(spec, deps)
		if err != nil {
			for _, b := range hs {
				_ = b.Close(ctx) // the build error is what matters
			}
			return nil, err
		}
		hs = append(hs, h)
		names = append(names, spec.Type)
	}
	return NewChain(names, hs, deps)
}

// NewChain wraps built handlers, named by their type, in the decorator. At
// most one handler may be a Flusher and it must be the last.
func NewChain(names []string, hs []Handler, deps Deps) (*Chain, error) {
	deps = deps.withDefaults()
	if len(names) != len(hs) {
		return nil, errors.New("pipeline: names and handlers differ in length")
	}
	c := &Chain{}
	for i, h := range hs {
		if f, ok := h.(Flusher); ok {
			if i != len(hs)-1 {
				return nil, fmt.Errorf("handler %d (%s) buffers its output and must be the last of the chain", i+1, names[i])
			}
			c.flusher = f
		}
		c.stages = append(c.stages, newObserved(names[i], h, deps))
	}
	return c, nil
}

// Flusher returns the chain's buffering handler, or nil.
func (c *Chain) Flusher() Flusher { return c.flusher }

// Process runs evs (one partition's batch, in offset order) through every
// handler. It returns the events that came out of the last handler, in
// order, and appends the events that failed to failed (each with its error
// in Errors, last). A non-nil error means the batch could not be processed
// and nothing of it may be committed.
func (c *Chain) Process(ctx context.Context, evs []*Event, failed []*Event) (out, fail []*Event, err error) {
	cur := evs
	for _, st := range c.stages {
		if len(cur) == 0 {
			break
		}
		cur, failed, err = st.process(ctx, cur, failed)
		if err != nil {
			return nil, failed, err
		}
	}
	return cur, failed, nil
}

// Close closes every handler, joining their errors.
func (c *Chain) Close(ctx context.Context) error {
	var errs []error
	for _, st := range c.stages {
		if err := st.h.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("closing handler %s: %w", st.name, err))
		}
	}
	return errors.Join(errs...)
}

// observed is the one decorator around every handler: it counts events in,
// out, filtered and failed, records the batch latency and logs failures.
type observed struct {
	name string
	h    Handler
	bh   BatchHandler
	log  *slog.Logger

	in, out, filtered, failed, skipped prometheus.Counter
	latency                            prometheus.Observer
	errs                               *prometheus.CounterVec
}

func newObserved(name string, h Handler, deps Deps) *observed {
	m := deps.Metrics
	lbl := func(result string) prometheus.Counter {
		return m.HandlerMessages.WithLabelValues(deps.WorkerName, name, result)
	}
	o := &observed{
		name:     name,
		h:        h,
		log:      deps.Logger.With("handler", name),
		in:       lbl(metrics.ResultIn),
		out:      lbl(metrics.ResultOut),
		filtered: lbl(metrics.ResultFiltered),
		failed:   lbl(metrics.ResultError),
		skipped:  m.Skipped.WithLabelValues(deps.WorkerName, SkipFiltered),
		latency:  m.HandlerLatency.WithLabelValues(deps.WorkerName, name),
		errs:     m.Errors.MustCurryWith(prometheus.Labels{"worker": deps.WorkerName}),
	}
	o.bh, _ = h.(BatchHandler)
	return o
}

// fatal reports whether err from a handler stops the batch instead of
// failing one event.
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && !isHandlerError(err)
}

func isHandlerError(err error) bool {
	var he *HandlerError
	return errors.As(err, &he)
}

func (o *observed) process(ctx context.Context, evs []*Event, failed []*Event) ([]*Event, []*Event, error) {
	start := time.Now()
	defer func() { o.latency.Observe(time.Since(start).Seconds()) }()
	o.in.Add(float64(len(evs)))
	out := make([]*Event, 0, len(evs))
	var nOut, nFiltered, nFailed int
	onResult := func(ev *Event, res []*Event, err error) error {
		switch {
		case err != nil:
			if fatal(ctx, err) {
				return err
			}
			he := asHandlerError(o.name, err)
			ev.Errors = append(ev.Errors, he)
			failed = append(failed, ev)
			nFailed++
			o.errs.WithLabelValues(he.Class).Inc()
			o.log.LogAttrs(ctx, slog.LevelWarn, "handler_failed",
				slog.String("topic", ev.Topic), slog.Int("partition", int(ev.Partition)),
				slog.Int64("offset", ev.Offset), slog.String("class", he.Class),
				slog.String("rule", he.Rule), slog.Any("error", he.Err))
		case len(res) == 0:
			nFiltered++
		default:
			out = append(out, res...)
			nOut += len(res)
		}
		return nil
	}
	if o.bh != nil {
		results, err := o.bh.HandleBatch(ctx, evs)
		if err != nil {
			return nil, failed, fmt.Errorf("handler %s: %w", o.name, err)
		}
		if len(results) != len(evs) {
			return nil, failed, fmt.Errorf("handler %s: %d results for %d events", o.name, len(results), len(evs))
		}
		for i, r := range results {
			if err := onResult(evs[i], r.Events, r.Err); err != nil {
				return nil, failed, fmt.Errorf("handler %s: %w", o.name, err)
			}
		}
	} else {
		for _, ev := range evs {
			res, err := o.h.Handle(ctx, ev)
			if err := onResult(ev, res, err); err != nil {
				return nil, failed, fmt.Errorf("handler %s: %w", o.name, err)
			}
		}
	}
	if nOut > 0 {
		o.out.Add(float64(nOut))
	}
	if nFiltered > 0 {
		o.filtered.Add(float64(nFiltered))
		o.skipped.Add(float64(nFiltered))
	}
	if nFailed > 0 {
		o.failed.Add(float64(nFailed))
	}
	return out, failed, nil
}
