package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/twmb/franz-go/pkg/kadm"

	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

func init() { register(newSimCmd) }

func newSimCmd(env *Env) *cobra.Command {
	var (
		addr, faults, token, baseTime, emit string
		kafkaBrokers                        string
		seed                                int64
		projects, events                    int
		rate                                float64
	)
	itelTemplate := strconv.FormatInt(sim.TemplateITelCabinet, 10)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Serve the ClaimX simulator: REST API with fault injection",
		Long: `Serve the ClaimX simulator: a deterministic world of projects and task
assignments (seeded), the ClaimX routes, and fault injection.

Routes (bearer token required):
  GET /customTasks/assignment/{assignmentId}?full=true
  GET /export/project/{projectId}
  GET /api/v1/tasks/{task_id}        the task template (e.g. ` + itelTemplate + `)
  GET /api/v1/projects/{project_id}
Admin (no token): GET/PUT /admin/faults (JSON), GET/PUT /admin/clock, GET /admin/stats.

The token is $CLAIMX_API_TOKEN, else --token, else "sim-token".

--faults takes ` + sim.FaultsHelp + `

With --emit FILE ("-" for stdout) the world's events are written as JSON
lines at --rate events/s (0: as fast as possible) while the API serves; the
API clock follows the events written.

With --kafka BROKERS the events are produced to the claimx.events topic
instead ("env" takes $KAFKA_BOOTSTRAP_SERVERS and the other KAFKA_*
settings), keyed by project id, at --rate events/s.`,
		Example: `  kpipe sim --seed 7 --projects 500
  kpipe sim --faults latency=5ms-40ms,500=0.02,429=0.01,retry_after=2s
  curl -H "Authorization: Bearer sim-token" localhost:8080/api/v1/tasks/` + itelTemplate + `
  kpipe sim --kafka 127.0.0.1:9092 --rate 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := sim.ParseFaults(faults)
			if err != nil {
				return usage(err)
			}
			opts := sim.Options{Seed: seed, Projects: projects, Events: events, Faults: f}
			if baseTime != "" {
				if opts.BaseTime, err = time.Parse(time.RFC3339, baseTime); err != nil {
					return usage(fmt.Errorf("--base-time: %w", err))
				}
			}
			hint := `"` + sim.DefaultToken + `" (default)`
			if v, ok := env.Getenv("CLAIMX_API_TOKEN"); ok && v != "" {
				opts.Token, hint = v, "$CLAIMX_API_TOKEN"
			} else if token != "" {
				opts.Token, hint = token, "the --token value"
			}
			s := sim.New(opts)
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			fmt.Fprintf(env.Stdout, "ClaimX simulator on http://%s\n  seed %d, %d events from %s to %s\n  token: %s\n",
				ln.Addr(), seed, s.Len(), s.Start().Format(time.RFC3339), s.End().Format(time.RFC3339), hint)
			if fs := f.String(); fs != "" {
				fmt.Fprintf(env.Stdout, "  faults: %s\n", fs)
			}
			srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
			errc := make(chan error, 2)
			go func() { errc <- srv.Serve(ln) }()
			if emit != "" && kafkaBrokers != "" {
				return usage(errors.New("--emit and --kafka exclude each other"))
			}
			if emit != "" {
				go func() { errc <- emitEvents(ctx, env, s, emit, rate) }()
			}
			if kafkaBrokers != "" {
				emit = kafkaBrokers // the events have a destination; wait for ctx after
				go func() { errc <- produceEvents(ctx, env, s, kafkaBrokers, rate) }()
			}
			select {
			case <-ctx.Done():
			case err = <-errc:
				if err != nil && !errors.Is(err, http.ErrServerClosed) {
					srv.Close()
					return err
				}
				if emit != "" {
					env.Logger.Info("sim_events_written")
					<-ctx.Done()
				}
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on")
	fl.Int64Var(&seed, "seed", 1, "world seed: the same seed gives the same world and events")
	fl.IntVar(&projects, "projects", 0, "number of projects (default 100, or sized by --events)")
	fl.IntVar(&events, "events", 0, "size the world to about this many events (when --projects is 0)")
	fl.StringVar(&faults, "faults", "", "faults to inject, e.g. latency=20ms,500=0.05,429=0.01,hang=0.001,malformed=0.01")
	fl.StringVar(&token, "token", "", `bearer token (default $CLAIMX_API_TOKEN, else "sim-token")`)
	fl.StringVar(&baseTime, "base-time", "", "RFC 3339 start of the timeline (default 2026-01-05T08:00:00Z)")
	fl.StringVar(&emit, "emit", "", `write the events as JSON lines to this file ("-": stdout)`)
	fl.Float64Var(&rate, "rate", 0, "events per second for --emit or --kafka (0: as fast as possible)")
	fl.StringVar(&kafkaBrokers, "kafka", "", `produce the events to claimx.events on these brokers (host:port,...; "env": $KAFKA_BOOTSTRAP_SERVERS)`)
	return cmd
}

// emitEvents writes the simulator's events as JSON lines.
func emitEvents(ctx context.Context, env *Env, s *sim.Sim, path string, rate float64) (err error) {
	var w io.Writer = env.Stdout
	if path != "-" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, modeOr(env.FileMode, fileMode))
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		w = f
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	err = s.Generate(ctx, sim.GenerateOptions{Rate: rate}, func(_ context.Context, _, v []byte) error {
		bw.Write(v)
		if err := bw.WriteByte('\n'); err != nil {
			return err
		}
		if rate > 0 {
			return bw.Flush()
		}
		return nil
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// produceEvents produces the simulator's events to claimx.events.
func produceEvents(ctx context.Context, env *Env, s *sim.Sim, brokers string, rate float64) error {
	kcfg, err := kafka.ConfigFromEnv(func(name string) (string, bool) {
		if name == "KAFKA_BOOTSTRAP_SERVERS" && brokers != "env" {
			return brokers, true
		}
		return env.Getenv(name)
	})
	if err != nil {
		return usage(fmt.Errorf("--kafka: %w", err))
	}
	cl, err := checkedClient(ctx, kcfg, env.Logger)
	if err != nil {
		return fmt.Errorf("--kafka: %w", err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, kafka.TopicEvents)
	if err != nil {
		return fmt.Errorf("--kafka %s: %w", brokers, err)
	}
	if !topics.Has(kafka.TopicEvents) {
		return fmt.Errorf("topic %s does not exist on %s: run kpipe topics create", kafka.TopicEvents, brokers)
	}
	pub := kafka.NewPublisher(cl, kafka.TopicEvents)
	err = s.Generate(ctx, sim.GenerateOptions{Rate: rate}, pub.Publish)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if ferr := pub.Flush(fctx); err == nil {
		err = ferr
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	env.Logger.Info("sim_events_produced", "events", pub.Published(), "topic", kafka.TopicEvents)
	return err
}
