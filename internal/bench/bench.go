// Package bench is kpipe bench: a self-contained load test of the tracking
// worker. It starts an embedded Kafka broker (or uses an existing one), the
// ClaimX simulator's API with a latency setting, writes a copy of the
// configuration naming fresh topics, produces N SPEC-shaped events and runs
// the real worker (`kpipe worker NAME`) as its own OS process. It measures
// what the worker process costs (events/s, CPU seconds per event from its
// rusage, peak RSS), produce-to-visible latency when producing at a rate,
// the ClaimX calls made, and verifies the table row by row: one row per
// event, no duplicates.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

// Defaults of Options.
const (
	DefaultEvents     = 100000
	DefaultKeys       = 1
	DefaultEventSize  = 1200
	DefaultPartitions = 3
	DefaultWorker     = "itel_cabinet_tracking_worker"
	// DefaultTimeout bounds the wait for the table to hold every event.
	DefaultTimeout = 10 * time.Minute
)

// templateID is the task template the shipped worker validates
// (task_id equals 32513); the events carry it.
const templateID = 32513

// Options configure Run.
type Options struct {
	// Events is how many events are produced (DefaultEvents).
	Events int
	// Keys is the lookup key cardinality: 1 keeps the configuration's
	// lookup (one task template, a cache hit after the first call); more
	// makes the lookup GET /customTasks/assignment/{assignment_id} over
	// this many assignments.
	Keys int
	// EventSize pads each event to about this many bytes (DefaultEventSize).
	EventSize int
	// Partitions of the input topic (DefaultPartitions).
	Partitions int
	// Rate, when above zero, produces this many events per second while the
	// worker runs and measures produce-to-visible latency; zero produces
	// every event before the worker starts (a burst) and measures
	// throughput.
	Rate int
	// Latency delays each simulator API response.
	Latency time.Duration
	// Kafka, when set, is an existing broker (HOST:PORT, comma-separated);
	// the bench creates its own topics there and deletes them after.
	Kafka string
	// ConfigDir is the configuration folder copied for the worker.
	ConfigDir string
	// Worker names the worker of workers.yaml (DefaultWorker).
	Worker string
	// WorkDir holds the config copy, the table and the worker's log; empty
	// makes a temporary folder that is removed afterwards.
	WorkDir string
	// Exe is the kpipe binary the worker runs as; Env are extra environment
	// variables for it (KEY=VALUE).
	Exe string
	Env []string
	// CPUProfile, when set, is the file the worker writes its CPU profile
	// to (kpipe worker --cpu-profile): an older --worker-bin must have the
	// flag.
	CPUProfile string
	// Worker settings changed in the copy of workers.yaml (a field of the
	// worker, such as batch_size or polls_in_flight, to its YAML value).
	Set map[string]string
	// Seed makes the simulator's world.
	Seed int64
	// Timeout bounds the wait for the table (DefaultTimeout).
	Timeout time.Duration
	// Log receives progress; nil discards.
	Log *slog.Logger
}

// Result is what a run measured.
type Result struct {
	Events     int
	Keys       int
	Partitions int
	Rate       int
	Latency    time.Duration
	// Elapsed is from the worker's start (burst) or the first produce
	// (rate) to the last row visible in the table; FirstVisible is when
	// the first commit was seen, from the same start.
	Elapsed, FirstVisible time.Duration
	// EventsPerSec is Events over Elapsed; SteadyPerSec counts the events
	// after the first commit over the time after it.
	EventsPerSec, SteadyPerSec float64
	// CPU is the worker process's user+system time (its rusage after it
	// exited, start and drain included).
	CPU time.Duration
	// PeakRSS is the worker process's peak resident set (VmHWM, read
	// while it ran; ru_maxrss where there is no /proc), in bytes.
	PeakRSS int64
	// SampledRSS is the largest resident set read while the worker ran
	// (every 10 ms; VmRSS), SampledAnon and SampledFile its anonymous
	// memory (the Go heap and runtime) and file pages (the executable):
	// zero where there is no /proc.
	SampledRSS, SampledAnon, SampledFile int64
	// P50, P99 and Max are produce-to-visible latencies (Rate > 0 only).
	P50, P90, P99, Max time.Duration
	// APICalls counts the requests the simulator answered, APIMaxInFlight
	// the most it had at once.
	APICalls, APIMaxInFlight int64
	// Rows are the table's rows, Distinct their distinct event ids of this
	// run, Duplicates the rows beyond one per event id, Missing the events
	// without a row, ErrorRecords the records on the error topic.
	Rows, Distinct, Duplicates, Missing, ErrorRecords int64
	// Commits are the table versions written.
	Commits int64
	// WorkDir is where the table and the worker's log are (kept when the
	// caller gave it).
	WorkDir string
}

// CPUPerEvent is CPU over Events.
func (r *Result) CPUPerEvent() time.Duration {
	if r.Events == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Events)
}

// OK reports whether the table holds every event exactly once.
func (r *Result) OK() bool {
	return r.Rows == int64(r.Events) && r.Distinct == int64(r.Events) && r.Duplicates == 0 && r.Missing == 0
}

func (o *Options) defaults() error {
	if o.Events <= 0 {
		o.Events = DefaultEvents
	}
	if o.Keys <= 0 {
		o.Keys = DefaultKeys
	}
	if o.EventSize <= 0 {
		o.EventSize = DefaultEventSize
	}
	if o.Partitions <= 0 {
		o.Partitions = DefaultPartitions
	}
	if o.Worker == "" {
		o.Worker = DefaultWorker
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Exe == "" {
		return errors.New("bench: the kpipe binary to run the worker with is not set")
	}
	if o.ConfigDir == "" {
		return errors.New("bench: the configuration folder is not set")
	}
	if o.Rate < 0 || o.Latency < 0 {
		return errors.New("bench: --rate and --api-latency must not be negative")
	}
	return nil
}

// run is one bench run's parts.
type run struct {
	o       Options
	id      string
	brokers []string
	topics  topics
	world   *sim.Sim
	assigns []int64
	apiURL  string
	dir     string
}

type topics struct{ input, success, errors, group string }

// Run runs one load test as o says and returns what it measured. An error
// means the run could not be made or measured; a table that does not hold
// every event once is a Result whose OK is false.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	r := &run{o: o, id: fmt.Sprintf("%d", time.Now().UnixNano()%1e10)}
	r.topics = topics{
		input:   "kpipe.bench." + r.id + ".tracking",
		success: "kpipe.bench." + r.id + ".success",
		errors:  "kpipe.bench." + r.id + ".errors",
		group:   "kpipe-bench-" + r.id,
	}
	r.dir = o.WorkDir
	if r.dir == "" {
		d, err := os.MkdirTemp("", "kpipe-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		r.dir = d
	} else if err := os.MkdirAll(r.dir, 0o750); err != nil {
		return nil, err
	}

	if o.Kafka != "" {
		r.brokers = strings.Split(o.Kafka, ",")
	} else {
		b, err := kafka.StartEmbedded(ctx, kafka.EmbeddedOptions{})
		if err != nil {
			return nil, fmt.Errorf("bench: embedded broker: %w", err)
		}
		defer b.Close()
		r.brokers = b.Addrs()
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...))
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	admin := kadm.NewClient(adm)
	if err := r.createTopics(ctx, admin); err != nil {
		return nil, err
	}
	if o.Kafka != "" {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_, _ = admin.DeleteTopics(dctx, r.topics.input, r.topics.success, r.topics.errors) // best effort: the topics are this run's own
		}()
	}

	stopAPI, err := r.startAPI()
	if err != nil {
		return nil, err
	}
	defer stopAPI()

	cfgDir := filepath.Join(r.dir, "config")
	if err := writeConfig(o.ConfigDir, cfgDir, o.Worker, r.topics, o.Keys > 1, o.Set); err != nil {
		return nil, err
	}
	res := &Result{Events: o.Events, Keys: o.Keys, Partitions: o.Partitions, Rate: o.Rate, Latency: o.Latency}
	if o.WorkDir != "" {
		res.WorkDir = o.WorkDir
	}
	if err := r.measure(ctx, cfgDir, admin, res); err != nil {
		return res, err
	}
	return res, nil
}

func (r *run) createTopics(ctx context.Context, admin *kadm.Client) error {
	for _, t := range []struct {
		name  string
		parts int
	}{{r.topics.input, r.o.Partitions}, {r.topics.success, 1}, {r.topics.errors, 1}} {
		resp, err := admin.CreateTopic(ctx, int32(t.parts), 1, nil, t.name)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return fmt.Errorf("bench: creating topic %s on %s: %w", t.name, strings.Join(r.brokers, ","), err)
		}
	}
	return nil
}

// startAPI serves the simulator on a free local port, with o.Latency on
// every response, and picks the assignments the events use.
func (r *run) startAPI() (func(), error) {
	need := max(r.o.Keys, 500)
	projects := 100
	for {
		r.world = sim.New(sim.Options{Seed: r.o.Seed, Projects: projects, Faults: sim.Faults{LatencyMin: r.o.Latency}})
		r.assigns = r.world.Manifest().AssignmentIDs(templateID)
		if len(r.assigns) >= need || projects > 1<<20 {
			break
		}
		projects = projects * (need + len(r.assigns)) / max(1, len(r.assigns))
	}
	if len(r.assigns) < need {
		return nil, fmt.Errorf("bench: the simulator made %d assignments of template %d, %d needed", len(r.assigns), templateID, need)
	}
	slices.Sort(r.assigns)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: r.world, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with Close
	r.apiURL = "http://" + ln.Addr().String()
	return func() { _ = srv.Close() }, nil
}

// percentile returns the p-th percentile (0..1) of sorted ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds)-1) * p)
	return ds[i]
}

func sortDurations(ds []time.Duration) { sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] }) }

// Print writes res as the bench's report.
func Print(w io.Writer, res *Result) {
	fmt.Fprintf(w, "events          %d (keys %d, partitions %d, api latency %s", res.Events, res.Keys, res.Partitions, res.Latency)
	if res.Rate > 0 {
		fmt.Fprintf(w, ", rate %d/s", res.Rate)
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintf(w, "elapsed         %.2fs (first commit visible at %.2fs)\n", res.Elapsed.Seconds(), res.FirstVisible.Seconds())
	if res.Rate == 0 {
		fmt.Fprintf(w, "throughput      %.0f events/s (%.0f events/s after the first commit)\n", res.EventsPerSec, res.SteadyPerSec)
	}
	fmt.Fprintf(w, "worker cpu      %.2fs, %.1f µs/event\n", res.CPU.Seconds(), float64(res.CPUPerEvent().Nanoseconds())/1e3)
	fmt.Fprintf(w, "worker peak rss %.1f MB", float64(res.PeakRSS)/1e6)
	if res.SampledRSS > 0 {
		fmt.Fprintf(w, " (largest sample %.1f MB: %.1f anonymous, %.1f file pages)",
			float64(res.SampledRSS)/1e6, float64(res.SampledAnon)/1e6, float64(res.SampledFile)/1e6)
	}
	fmt.Fprintln(w)
	if res.Rate > 0 {
		fmt.Fprintf(w, "latency         p50 %s, p90 %s, p99 %s, max %s (produce to visible in the table)\n",
			res.P50.Round(time.Millisecond), res.P90.Round(time.Millisecond), res.P99.Round(time.Millisecond), res.Max.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "api calls       %d (at most %d at once)\n", res.APICalls, res.APIMaxInFlight)
	fmt.Fprintf(w, "table           %d rows, %d distinct events, %d duplicates, %d missing, %d commits; %d error records\n",
		res.Rows, res.Distinct, res.Duplicates, res.Missing, res.Commits, res.ErrorRecords)
	if res.OK() {
		fmt.Fprintln(w, "verified        OK: every event is in the table exactly once")
	} else {
		fmt.Fprintln(w, "verified        FAILED: the table does not hold every event exactly once")
	}
	if res.WorkDir != "" {
		fmt.Fprintf(w, "work dir        %s (table, config, worker.log)\n", res.WorkDir)
	}
}
