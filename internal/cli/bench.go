package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"kpipe/internal/bench"
)

func init() { register(newBenchCmd) }

func newBenchCmd(env *Env) *cobra.Command {
	o := bench.Options{}
	var exitOnFail bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test the tracking worker: events/s, CPU per event, peak RSS, latency, API calls",
		Long: `Run a self-contained load test of a plugin action worker (default the
iTel tracking worker). kpipe bench starts an embedded Kafka broker (or uses
--kafka), the ClaimX simulator's API on a local port with --api-latency on
every response, copies the configuration with topics and a consumer group of
its own, produces --events SPEC-shaped events of about --event-size bytes
over --partitions partitions, and runs the worker as its own OS process
(kpipe worker NAME, this binary or --worker-bin) writing a fresh Delta table.

--keys 1 keeps the configuration's lookup (one task template: a cache hit
after the first call); --keys N looks up each event's assignment
(GET /customTasks/assignment/{id}) over N distinct assignments.

Without --rate every event is produced before the worker starts (a burst)
and the figure is throughput; with --rate R events are produced at R per
second while the worker runs, and the figure is the latency from produce to
visible in the table (a new table version whose txn offsets cover the
record), p50/p90/p99/max.

It prints the worker process's events/s, CPU seconds per event (its rusage
after it exited) and peak RSS (its VmHWM, read from /proc while it ran,
with the largest resident set read split into anonymous memory and file
pages; ru_maxrss, which can count the bench's own memory too, where there
is no /proc), the API calls the simulator answered, and a
check of the table: one row per event, no duplicates. Exit 1 when the check
fails.`,
		Example: `  kpipe bench --events 500000                                 # one lookup key, cache hits
  kpipe bench --events 500000 --keys 5000                     # 5,000 keys, API at 0 ms
  kpipe bench --events 500000 --keys 5000 --api-latency 20ms  # 5,000 keys, API at 20 ms
  kpipe bench --events 20000 --rate 1000                      # latency at 1,000 events/s
  kpipe bench --kafka 127.0.0.1:9092 --events 100000          # against an existing broker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.ConfigDir = env.ConfigDir
			if o.Exe == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				o.Exe = exe
			}
			o.Log = env.Logger
			res, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			bench.Print(env.Stdout, res)
			if !res.OK() && exitOnFail {
				return fmt.Errorf("bench: the table does not hold every event exactly once")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Events, "events", bench.DefaultEvents, "events to produce")
	f.IntVar(&o.Keys, "keys", bench.DefaultKeys, "lookup key cardinality (1: the configuration's one task template)")
	f.IntVar(&o.EventSize, "event-size", bench.DefaultEventSize, "about this many bytes per event")
	f.IntVar(&o.Partitions, "partitions", bench.DefaultPartitions, "partitions of the input topic")
	f.IntVar(&o.Rate, "rate", 0, "produce this many events/s while the worker runs and measure latency (0: a burst, measure throughput)")
	f.DurationVar(&o.Latency, "api-latency", 0, "delay of every ClaimX API response")
	f.StringVar(&o.Kafka, "kafka", "", "an existing broker HOST:PORT (comma-separated) instead of the embedded one; the bench's topics are deleted after")
	f.StringVar(&o.Worker, "worker", bench.DefaultWorker, "the worker of workers.yaml to run")
	f.StringVar(&o.WorkDir, "work-dir", "", "keep the config copy, the table and worker.log here (default: a temporary folder, removed)")
	f.StringVar(&o.Exe, "worker-bin", "", "the kpipe binary to run the worker with (default: this one), e.g. an older build to compare")
	f.StringArrayVar(&o.Env, "worker-env", nil, "KEY=VALUE set in the worker's environment (repeatable), e.g. GOMEMLIMIT=120MiB")
	f.StringVar(&o.CPUProfile, "cpu-profile", "", "have the worker write a CPU profile of its run to this file (go tool pprof kpipe FILE)")
	f.StringToStringVar(&o.Set, "set", nil, "worker fields changed in the copy of workers.yaml, e.g. --set batch_size=1000,polls_in_flight=4")
	f.Int64Var(&o.Seed, "seed", 1, "simulator world seed")
	f.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "give up when the table does not hold every event by then")
	f.BoolVar(&exitOnFail, "check", true, "exit 1 when the table does not hold every event exactly once")
	return cmd
}
