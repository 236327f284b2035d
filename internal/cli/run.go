package cli

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"kpipe/internal/metrics"
)

// service is what runService runs: a worker (kpipe worker, kpipe enrich) or
// the whole local stack (kpipe up). Run returns nil after a graceful stop;
// Close releases what building the service opened, whether Run ran or not.
type service interface {
	Run(ctx context.Context) error
	Close(ctx context.Context) error
}

// runOptions tune runService.
type runOptions struct {
	// metricsAddr, when set, serves /metrics, /healthz and /readyz of
	// gatherer and ready there (internal/metrics); a busy address fails
	// the run.
	metricsAddr string
	gatherer    prometheus.Gatherer
	ready       metrics.ReadyFunc
	// status supplies the live page's sections (metrics.StatusProvider).
	status []metrics.StatusProvider
	log    *slog.Logger
	// failure, when set, logs the error that ends the service at ERROR
	// with this message ("worker_failed"); empty when the service logs its
	// failures itself.
	failure string
}

// closeTimeout bounds a service's Close once its Run has returned (Run
// bounds its own drain).
const closeTimeout = 30 * time.Second

// errRunStopped ends the errgroup after the service's graceful stop.
var errRunStopped = errors.New("stopped")

// runService is the one way a long-running command runs: s runs until ctx
// is cancelled (the first SIGINT or SIGTERM: cmd/kpipe cancels ctx and
// restores the default handlers, so that a second signal ends the process
// at once), after which s drains within its own shutdown deadline, or until
// s fails. The metrics endpoint of o, if any, answers through the drain.
// Then s is closed within closeTimeout. The error returned is s's failure
// (logged when o.failure is set), else its Close's; Run maps it to the exit
// code (exitCode): ExitFailure, or ExitUsage for a usage error.
func runService(ctx context.Context, s service, o runOptions) (err error) {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if cerr := s.Close(cctx); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := serveWhileRunning(ctx, s.Run, o); err != nil {
		if o.failure != "" {
			o.log.Error(o.failure, "error", err)
		}
		return err
	}
	return nil
}

// serveWhileRunning runs run until it returns, serving the metrics endpoint
// meanwhile when o.metricsAddr is set; the endpoint stays up through run's
// drain.
func serveWhileRunning(ctx context.Context, run func(context.Context) error, o runOptions) error {
	g, gctx := errgroup.WithContext(ctx)
	if o.metricsAddr != "" {
		srv := metrics.NewServer(o.metricsAddr, o.gatherer, o.ready, o.log)
		srv.AddStatus(o.status...)
		if err := srv.Start(); err != nil {
			return err
		}
		o.log.Info("metrics_serving", slog.String("addr", srv.Addr().String()))
		mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		defer stop()
		g.Go(func() error { return srv.Run(mctx) })
		g.Go(func() error {
			<-gctx.Done()
			stop()
			return nil
		})
	}
	g.Go(func() error {
		if err := run(gctx); err != nil {
			return err
		}
		return errRunStopped
	})
	if err := g.Wait(); err != nil && !errors.Is(err, errRunStopped) {
		return err
	}
	return nil
}
