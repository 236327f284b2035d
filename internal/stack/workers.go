package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/config"
	"kpipe/internal/enrich"
	"kpipe/internal/httpconn"
	"kpipe/internal/metrics"
	"kpipe/internal/plugin"
)

// EnrichConnection is the named connection the enrichment worker fetches
// rows through.
const EnrichConnection = "claimx_api"

// Enricher is the enrichment worker built from the configuration, with what
// it runs on: the ClaimX client of EnrichConnection and the enabled
// plugins. Close releases all of them.
type Enricher struct {
	w    *enrich.Worker
	cx   *claimx.Client
	orch *plugin.Orchestrator

	once sync.Once
	err  error
}

// NewEnricher builds the enrichment worker of cfg with o (Fetcher,
// Orchestrator, Metrics and Logger are filled in). A missing connection or
// a plugin that cannot be built is an error wrapping ErrInvalid.
func NewEnricher(ctx context.Context, cfg *config.Config, o enrich.Options, m *metrics.Metrics, log *slog.Logger) (*Enricher, error) {
	conn := cfg.Connections[EnrichConnection]
	if conn == nil {
		return nil, invalid(fmt.Errorf("connection %q is not defined in %s/plugins/shared/connections", EnrichConnection, cfg.Dir))
	}
	cx, err := claimx.NewClient(conn, httpconn.WithMetrics(m), httpconn.WithLogger(log))
	if err != nil {
		return nil, invalid(err)
	}
	orch, err := plugin.NewOrchestrator(ctx, plugin.DefaultRegistry(), cfg.Plugins, plugin.Deps{Logger: log, Metrics: m})
	if err != nil {
		cx.Close()
		return nil, invalid(err)
	}
	e := &Enricher{cx: cx, orch: orch}
	o.Fetcher, o.Orchestrator, o.Metrics, o.Logger = cx, orch, m, log
	if e.w, err = enrich.New(o); err != nil {
		_ = e.Close(ctx) // the build error is what matters
		return nil, err
	}
	return e, nil
}

// Run runs the worker; see enrich.Worker.Run.
func (e *Enricher) Run(ctx context.Context) error { return e.w.Run(ctx) }

// Ready backs /readyz; see enrich.Worker.Ready.
func (e *Enricher) Ready(ctx context.Context) error { return e.w.Ready(ctx) }

// Close releases the worker, the plugins and the ClaimX client. Call it
// after Run has returned, or instead of Run; it is idempotent.
func (e *Enricher) Close(ctx context.Context) error {
	e.once.Do(func() {
		var errs []error
		if e.w != nil {
			errs = append(errs, e.w.Close(ctx))
		}
		e.cx.Close()
		errs = append(errs, e.orch.Close(ctx))
		e.err = errors.Join(errs...)
	})
	return e.err
}

// supervisor runs the stack's workers. A worker that fails, or returns
// while not told to stop, ends the run (stopRun) with its error, logged at
// ERROR.
type supervisor struct {
	log      *slog.Logger
	stopRun  context.CancelCauseFunc
	stopping context.Context // done once the workers are told to stop
	wg       sync.WaitGroup
	mu       sync.Mutex
	errs     []error
}

func (u *supervisor) start(name string, run func(context.Context) error) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		err := run(u.stopping)
		if err == nil && u.stopping.Err() == nil {
			err = errors.New("stopped by itself")
		}
		if err == nil || (u.stopping.Err() != nil && errors.Is(err, context.Canceled)) {
			return
		}
		err = fmt.Errorf("%s: %w", name, err)
		u.log.Error("worker_failed", "worker", name, "err", err)
		u.mu.Lock()
		u.errs = append(u.errs, err)
		u.mu.Unlock()
		u.stopRun(err)
	}()
}

// wait waits for every worker and returns their failures, joined.
func (u *supervisor) wait() error {
	u.wg.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	return errors.Join(u.errs...)
}

// ErrInUse means another running process holds something this one needs: a
// data folder or a Kafka identity.
var ErrInUse = errors.New("in use by another kpipe process")

// InUseError tells which process holds what: a lock file in a data folder,
// or a consumer group with live members.
type InUseError struct {
	// What is held: "data folder ./data", "consumer group g on 127.0.0.1:9092".
	What string
	// By describes the holder: "kpipe up (pid 1234)".
	By string
	// Hint says what to do about it.
	Hint string
}

func (e *InUseError) Error() string {
	msg := e.What + " is in use by " + e.By
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// groupsFree fails with an *InUseError when one of the consumer groups has
// members on the cluster: another stack (or a worker given the same group)
// is running there. Members of a process that just died stay until their
// session times out, so a group is asked for up to settle before it counts
// as taken.
func groupsFree(ctx context.Context, cl *kgo.Client, settle time.Duration, brokers []string, groups ...string) error {
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(settle)
	for {
		described, err := adm.DescribeGroups(ctx, groups...)
		if err != nil {
			return fmt.Errorf("describing consumer groups %v: %w", groups, err)
		}
		var busy []string
		for _, g := range groups {
			d, ok := described[g]
			if !ok || d.Err != nil || len(d.Members) == 0 {
				continue
			}
			var who []string
			for _, mb := range d.Members {
				who = append(who, mb.ClientID+"@"+strings.TrimPrefix(mb.ClientHost, "/"))
			}
			sort.Strings(who)
			busy = append(busy, fmt.Sprintf("%s (members %s)", g, strings.Join(who, ", ")))
		}
		if len(busy) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return &InUseError{
				What: "consumer group " + strings.Join(busy, " and ") + " on " + strings.Join(brokers, ","),
				By:   "another running process (another kpipe up?)",
				Hint: "stop it, or give this one its own identity with --id-prefix",
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
