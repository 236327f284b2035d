package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a fresh registry holding the Go runtime and process
// collectors, ready for New and NewServer. Each process builds one and
// injects it; the default registry is never used.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// ReadyFunc reports whether the process can do its work: nil means ready, an
// error says why not. It is called once per /readyz request, with a context
// bounded by the server's readiness timeout, possibly from several goroutines
// at once, so it must be safe for concurrent use and must not block past ctx.
type ReadyFunc func(ctx context.Context) error

// ErrDegraded is wrapped by a ReadyFunc's error when the process works but
// a dependency it can do without is failing (ClaimX lookups that are
// written as null): /readyz then answers 200 "degraded: <reason>", so that
// an orchestrator keeps the process while an operator sees the reason.
var ErrDegraded = errors.New("degraded")

// ErrServerStarted is returned by Start when the server is already listening.
var ErrServerStarted = errors.New("metrics server already started")

// readyTimeout bounds one readiness check.
const readyTimeout = 5 * time.Second

// shutdownTimeout bounds the graceful shutdown after the context is done.
const shutdownTimeout = 5 * time.Second

// Server serves /metrics, /healthz, /readyz and the live page (/ and
// /status.json, see AddStatus) over HTTP.
//
//	reg := metrics.NewRegistry()
//	m := metrics.New(reg)
//	srv := metrics.NewServer(":9090", reg, worker.Ready, logger)
//	g.Go(func() error { return srv.Run(ctx) })
//
// /metrics exposes the injected gatherer; /healthz answers 200 "ok" while the
// process is alive; /readyz answers 200 "ok" when the ReadyFunc returns nil,
// 200 with the reason when its error wraps ErrDegraded, and 503 with the
// reason otherwise. / is a page that shows throughput, lag, errors by
// class, tables, readiness and what the StatusProviders added with
// AddStatus supply, refreshed from /status.json.
type Server struct {
	addr   string
	logger *slog.Logger
	srv    *http.Server
	page   *pageState

	mu sync.Mutex
	ln net.Listener
}

// NewServer returns a server for addr (host:port; ":0" picks a free port)
// exposing g. A nil ready means always ready; a nil logger discards.
func NewServer(addr string, g prometheus.Gatherer, ready ReadyFunc, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if ready == nil {
		ready = func(context.Context) error { return nil }
	}
	mux := http.NewServeMux()
	page := &pageState{g: g, ready: ready}
	mux.HandleFunc("GET /{$}", page.servePage)
	mux.HandleFunc("GET /status.json", page.serveStatus)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			if errors.Is(err, ErrDegraded) {
				writeText(w, http.StatusOK, err.Error())
				return
			}
			writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		writeText(w, http.StatusOK, "ok")
	})
	return &Server{
		addr:   addr,
		logger: logger,
		page:   page,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
		},
	}
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// Handler returns the server's routes, for mounting elsewhere or testing.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// Start binds the listen address without serving yet, so that Addr is known
// (for ":0") and a busy port fails before anything else starts.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return ErrServerStarted
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("metrics server: listening on %s: %w", s.addr, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Run serves until ctx is done, then shuts down gracefully: in-flight scrapes
// get up to 5 seconds to finish. It calls Start first if needed. It returns
// nil after a shutdown caused by ctx.
func (s *Server) Run(ctx context.Context) error {
	if s.Addr() == nil {
		if err := s.Start(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	s.logger.Info("metrics_server_listening", "addr", ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	pctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go s.page.sampleLoop(pctx)
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("metrics server: shutting down: %w", err)
	}
	return nil
}
