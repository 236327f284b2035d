//go:build linux

package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/delta"
	"kpipe/internal/sim"
)

const (
	topicEvents      = "claimx.events"
	topicEnrichErrs  = "claimx.enrichment.errors"
	topicTracking    = "itel.cabinet.task.tracking"
	topicTrackErrs   = "itel.cabinet.task.tracking.errors"
	groupEnrich      = "claimx_enrichment_worker_group"
	workerName       = "itel_cabinet_tracking_worker"
	tableName        = "itel_cabinet_task_tracking"
	templateID       = 32513
	streamRate       = 60      // events/s of the simulator's stream
	worldEvents      = 200_000 // the stream is stopped long before its end
	defaultTrials    = 6
	defaultOutage    = 40 * time.Second
	bigInputMaxBytes = 4 << 20 // max.message.bytes of the two input topics
)

// pendingFeatures are checks whose failures are logged and end the test
// skipped, naming them, instead of failing it; KPIPE_CHAOS_STRICT=1 makes
// them fail. Every check of issue 10 is in and fails for real; the map
// stays for checks of features still being built.
//
// The poison check finds a message's error record by its content (the
// SHA-256 of its value) and then checks that the record names the offset
// the broker acknowledged. (The offsets once looked wrong after long runs:
// the suite took ProduceSync's results in the order it gave the records,
// and they come in the order they were answered.) Rows are unexpected when
// the simulator never made their event, whatever the suite's read-back of
// claimx.events saw.
var pendingFeatures = map[string]string{}

// suite is one run: the processes, what was done to them, what was seen.
type suite struct {
	t      *testing.T
	ctx    context.Context
	begin  time.Time
	rng    *rand.Rand
	seed   uint64
	root   string
	bin    string
	cfgDir string
	data   string
	env    []string
	kcl    *kgo.Client
	adm    *kadm.Client
	table  *delta.Table

	broker, simAPI, simStream, enrich, worker *proc
	brokerAddr, simAddr                       string

	mu        sync.Mutex
	finishing bool
	exits     []exitInfo
	samples   []sample
	expects   []expectation
	kills     map[string]int
	restarts  []restart
	poisons   []*poison
	failures  map[string][]string // by check
	notes     []string
	truth     *sim.Manifest
	fig       figures
	// stuck names the scenario in which the pipeline stopped progressing,
	// and stuckCheck the check that counts it.
	stuck, stuckCheck string
}

type sample struct {
	at   time.Time
	proc string
	code int
	body string
}

// expectation is what /readyz of proc must say in [from, to]: "ready"
// (200 from the first sample on, or within grace of from), or "not_ready"
// (503 within grace of from, then until to).
type expectation struct {
	proc, want, why string
	from, to        time.Time
	grace           time.Duration
}

type restart struct {
	proc    string
	consume time.Duration // restart to consuming again
	ready   time.Duration // restart to /readyz 200
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos suite: skipped with -short")
	}
	trials := defaultTrials
	if v := os.Getenv("KPIPE_CHAOS_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("KPIPE_CHAOS_TRIALS=%q: want a number of kill trials", v)
		}
		trials = n
	}
	outage := defaultOutage
	if v := os.Getenv("KPIPE_CHAOS_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("KPIPE_CHAOS_OUTAGE=%q: %v", v, err)
		}
		outage = d
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("KPIPE_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KPIPE_CHAOS_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("chaos seed %d (KPIPE_CHAOS_SEED=%d repeats the choices), %d kill trials, ClaimX outage %s", seed, seed, trials, outage)
	begin := time.Now()

	s := &suite{t: t, ctx: t.Context(), seed: seed, begin: begin, rng: rand.New(rand.NewPCG(seed, 0x6b70)), kills: map[string]int{}, failures: map[string][]string{}}
	s.setup()
	s.startAll()

	// Warm-up: everything consumes and the table grows.
	s.waitProgress("warm-up", 50, 2*time.Minute)
	s.expectReady(time.Now(), "healthy after start")

	s.killTrials(trials)
	s.storm("429 storm", `{"rate_limit_429":0.6,"retry_after":"1s"}`)
	s.storm("hangs", `{"hang_rate":0.25}`)
	s.claimxOutage(outage)
	s.storageFault()
	// Poison last: a message that stops a worker must not hide what the
	// other scenarios show. The stream goes on around it.
	rounds := 1
	if trials > defaultTrials {
		rounds = 2
	}
	for round := 1; round <= rounds; round++ {
		s.poisonRound(round)
	}

	s.finish()
	s.verify()
	s.report(trials, time.Since(begin))
}

// setup builds the binary, the folders and the configuration.
func (s *suite) setup() {
	t := s.t
	root, err := os.MkdirTemp("", "kpipe-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("KPIPE_CHAOS_KEEP") == "1" {
			t.Logf("process logs, broker data and table kept in %s", root)
			return
		}
		os.RemoveAll(root)
	})
	// Readable by the unprivileged user the worker runs as when the suite
	// is root (root ignores read-only folders: see storageFault).
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	s.root = root
	for _, d := range []string{"bin", "logs", "broker", "data", "config"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mod := moduleRoot(t)
	s.bin = buildKpipe(t, mod, filepath.Join(root, "bin"))
	s.cfgDir = filepath.Join(root, "config")
	s.copyConfig(filepath.Join(mod, "config"))
	s.data = filepath.Join(root, "data")
	if os.Getuid() == 0 {
		if err := os.Chown(s.data, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
}

// nobody is the user the tracking worker runs as when the suite is root.
const nobody = 65534

// copyConfig copies the repository's config folder, with the ClaimX
// connection's timeouts scaled down so that hangs and outages fit the
// default run: one attempt 3 s, 2 retries, backoff capped at 4 s. The
// outage still outlasts every one of them and Kafka's transaction timeout.
func (s *suite) copyConfig(src string) {
	t := s.t
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(s.cfgDir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, filepath.Join("connections", "claimx.yaml")) {
			b = replaceYAML(t, b, map[string]string{"timeout_seconds": "3", "max_retries": "2", "retry_backoff_base": "2", "retry_backoff_max": "4"})
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying the config: %v", err)
	}
}

// replaceYAML sets "key: value" lines of a YAML file; every key must be
// there.
func replaceYAML(t *testing.T, b []byte, kv map[string]string) []byte {
	lines := strings.Split(string(b), "\n")
	for k, v := range kv {
		found := false
		for i, l := range lines {
			trim := strings.TrimLeft(l, " ")
			if strings.HasPrefix(trim, k+":") {
				lines[i] = l[:len(l)-len(trim)] + k + ": " + v
				found = true
			}
		}
		if !found {
			t.Fatalf("claimx.yaml has no %s", k)
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

func (s *suite) newProc(name string, args func() []string) *proc {
	p := &proc{name: name, bin: s.bin, args: args, logDir: filepath.Join(s.root, "logs")}
	p.onExit = func(e exitInfo) { s.unexpectedExit(p, e) }
	s.t.Cleanup(p.cleanup)
	return p
}

// unexpectedExit records an exit the suite did not cause and restarts the
// process, as a supervisor would.
func (s *suite) unexpectedExit(p *proc, e exitInfo) {
	s.mu.Lock()
	finishing := s.finishing
	n := 0
	if !finishing {
		s.exits = append(s.exits, e)
		for _, x := range s.exits {
			if x.proc == e.proc {
				n++
			}
		}
	}
	s.mu.Unlock()
	if finishing {
		return
	}
	switch {
	case n <= 2:
		var keep []string
		for _, l := range e.tail {
			if !strings.Contains(l, `"component":"kgo"`) {
				keep = append(keep, l)
			}
		}
		s.t.Logf("UNEXPECTED EXIT of %s (incarnation %d): %s; last lines:\n%s", e.proc, e.gen, e.err, strings.Join(keep[max(0, len(keep)-6):], "\n"))
	case n%10 == 0:
		s.t.Logf("UNEXPECTED EXIT of %s: %d so far (restarted each time, backing off to 8 s)", e.proc, n)
	}
	// Back off as a supervisor does: 1 s, 2 s, 4 s, ... at most 8 s.
	time.AfterFunc(time.Duration(min(8, 1<<min(n-1, 3)))*time.Second, func() {
		s.mu.Lock()
		finishing := s.finishing
		s.mu.Unlock()
		if !finishing && !p.running() {
			// A failed restart shows as the process not running: the
			// checks see it; the test may be over, so no logging here.
			_ = p.start()
		}
	})
}

// startAll starts the broker, creates the topics, and starts the simulator
// twice and both workers.
func (s *suite) startAll() {
	t, ctx := s.t, s.ctx
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.root, "KPIPE_LOG_FORMAT=json", "CLAIMX_API_TOKEN=sim-token"}

	s.broker = s.newProc("broker", func() []string {
		addr := "127.0.0.1:0"
		if s.brokerAddr != "" {
			addr = s.brokerAddr
		}
		return []string{"--log-format", "json", "broker", "--addr", addr, "--data-dir", filepath.Join(s.root, "broker")}
	})
	s.broker.env = base
	l := s.startAwait(s.broker, "the broker's ready line", func(l logLine) bool { return strings.HasPrefix(l.text, "broker listening on ") })
	s.brokerAddr = strings.TrimPrefix(l.text, "broker listening on ")
	if i := strings.IndexByte(s.brokerAddr, ','); i > 0 {
		s.brokerAddr = s.brokerAddr[:i]
	}
	s.env = append(slices.Clone(base), "KAFKA_BOOTSTRAP_SERVERS="+s.brokerAddr)

	if out, err := runOnce(ctx, s.bin, s.env, 2*time.Minute, "--config-dir", s.cfgDir, "topics", "create"); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("kpipe topics create:\n%s", strings.TrimSpace(out))
	}
	var err error
	s.kcl, err = kgo.NewClient(kgo.SeedBrokers(s.brokerAddr), kgo.ProducerBatchMaxBytes(bigInputMaxBytes),
		kgo.MaxBufferedBytes(64<<20), kgo.RecordRetries(20), kgo.RequestRetries(20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.kcl.Close)
	s.adm = kadm.NewClient(s.kcl)
	// The input topics take messages over 1 MB, the error topics keep
	// Kafka's default limit: an error record of such a message must be cut.
	big := strconv.Itoa(bigInputMaxBytes)
	resp, err := s.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &big}}, topicEvents, topicTracking)
	if err == nil {
		for _, r := range resp {
			if r.Err != nil {
				err = fmt.Errorf("%s: %w", r.Name, r.Err)
			}
		}
	}
	if err != nil {
		s.note("could not raise max.message.bytes of the input topics (%v): the over-1-MB poison is skipped", err)
	}

	simArgs := func(addr *string, extra ...string) func() []string {
		return func() []string {
			a := "127.0.0.1:0"
			if *addr != "" {
				a = *addr
			}
			return append([]string{"--log-format", "json", "sim", "--addr", a, "--seed", strconv.FormatUint(s.seed%1000, 10), "--events", strconv.Itoa(worldEvents)}, extra...)
		}
	}
	s.simAPI = s.newProc("sim", simArgs(&s.simAddr))
	s.simAPI.env = s.env
	l = s.startAwait(s.simAPI, "the simulator's address", func(l logLine) bool { return strings.HasPrefix(l.text, "ClaimX simulator on http://") })
	s.simAddr = strings.TrimPrefix(l.text, "ClaimX simulator on http://")
	s.env = append(s.env, "CLAIMX_API_BASE_URL=http://"+s.simAddr)

	s.enrich = s.newProc("enrich", func() []string {
		return []string{"--config-dir", s.cfgDir, "--log-format", "json", "enrich", "--metrics-addr", "127.0.0.1:0", "--transactional-id", "chaos-enrich"}
	})
	s.enrich.env = s.env
	s.worker = s.newProc("worker", func() []string {
		return []string{"--config-dir", s.cfgDir, "--log-format", "json", "worker", workerName, "--data", s.data, "--metrics-addr", "127.0.0.1:0"}
	})
	s.worker.env = s.env
	if os.Getuid() == 0 {
		s.worker.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
	}
	s.startAwait(s.enrich, "metrics_serving", isMetricsServing)
	s.startAwait(s.worker, "metrics_serving", isMetricsServing)

	var streamAddr string
	s.simStream = s.newProc("sim-stream", simArgs(&streamAddr, "--rate", strconv.Itoa(streamRate), "--kafka", s.brokerAddr))
	s.simStream.env = s.env
	s.startAwait(s.simStream, "the simulator's address", func(l logLine) bool { return strings.HasPrefix(l.text, "ClaimX simulator on http://") })

	// Cleanups run last-in first-out: this one, before the processes',
	// stops the supervisor's restarts and the sampler.
	t.Cleanup(func() {
		s.mu.Lock()
		s.finishing = true
		s.mu.Unlock()
	})
	go s.sampleReadiness()
}

func isMetricsServing(l logLine) bool { return l.fields["msg"] == "metrics_serving" }

func (s *suite) startAwait(p *proc, what string, match func(logLine) bool) logLine {
	s.t.Helper()
	l, err := p.startAwait(s.ctx, 90*time.Second, what, match)
	if err != nil {
		s.t.Fatal(err)
	}
	return l
}

// sampleReadiness samples both workers' /readyz every 500 ms until the
// run finishes.
func (s *suite) sampleReadiness() {
	for {
		s.mu.Lock()
		done := s.finishing
		s.mu.Unlock()
		if done || s.ctx.Err() != nil {
			return
		}
		for _, p := range []*proc{s.enrich, s.worker} {
			code, body := p.readyz(s.ctx)
			s.mu.Lock()
			s.samples = append(s.samples, sample{at: time.Now(), proc: p.name, code: code, body: body})
			s.mu.Unlock()
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (s *suite) expect(proc, want, why string, from, to time.Time, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expects = append(s.expects, expectation{proc: proc, want: want, why: why, from: from, to: to, grace: grace})
}

// expectReady opens a window in which both workers must be ready; it is
// closed by the next scenario (closeReady).
func (s *suite) expectReady(from time.Time, why string) {
	s.expect("enrich", "ready", why, from, time.Time{}, 45*time.Second)
	s.expect("worker", "ready", why, from, time.Time{}, 45*time.Second)
}

func (s *suite) closeReady() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for i := range s.expects {
		if s.expects[i].to.IsZero() {
			s.expects[i].to = now
		}
	}
}

func (s *suite) fail(check, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.failures[check] = append(s.failures[check], msg)
	s.mu.Unlock()
	s.t.Logf("CHECK %s: %s", check, msg)
}

func (s *suite) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.notes = append(s.notes, msg)
	s.mu.Unlock()
	s.t.Log(msg)
}

// progress is a monotonic measure of the pipeline's work: the enrichment
// group's committed offsets on claimx.events plus the table's version.
func (s *suite) progress() (enriched int64, version int64) {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	if offs, err := s.adm.FetchOffsets(ctx, groupEnrich); err == nil {
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topicEvents && o.At > 0 {
				enriched += o.At
			}
		})
	}
	version = -1
	if s.table == nil {
		store, err := delta.NewLocalStorage(filepath.Join(s.data, "delta", tableName))
		if err == nil {
			if tb, err := delta.Open(ctx, store); err == nil {
				s.table = tb
			}
		}
	}
	if s.table != nil {
		if snap, err := s.table.Snapshot(ctx); err == nil {
			version = snap.Version()
		}
	}
	return enriched, version
}

// skip says whether a scenario is skipped because the pipeline stopped
// progressing in an earlier one.
func (s *suite) skip(scenario string) bool {
	s.mu.Lock()
	stuck := s.stuck
	s.mu.Unlock()
	if stuck == "" {
		return false
	}
	s.note("%s skipped: the pipeline stopped progressing during %s", scenario, stuck)
	return true
}

// waitProgress waits until the enrichment group has committed n more
// events and the table has a newer version; a failure is a "progress"
// failure.
func (s *suite) waitProgress(what string, n int64, d time.Duration) bool {
	return s.waitProgressFor("progress", what, n, d)
}

// waitProgressFor is waitProgress with the check a failure counts against.
// A failure marks the pipeline stuck: the scenarios after are skipped.
func (s *suite) waitProgressFor(check, what string, n int64, d time.Duration) bool {
	e0, v0 := s.progress()
	start := time.Now()
	ok := poll(s.ctx, d, 250*time.Millisecond, func() bool {
		e, v := s.progress()
		return e >= e0+n && v > v0
	})
	if !ok && s.ctx.Err() != nil {
		return false
	}
	e, v := s.progress()
	if !ok {
		s.fail(check, "%s: the pipeline did not progress within %s (enrich committed %d → %d, table version %d → %d)", what, d, e0, e, v0, v)
		s.mu.Lock()
		if s.stuck == "" {
			s.stuck, s.stuckCheck = what, check
		}
		s.mu.Unlock()
		s.logTails()
		return false
	}
	s.t.Logf("[+%s] %s: progressed in %s (enrich committed %d → %d, table version %d → %d)", time.Since(s.begin).Round(time.Second), what, time.Since(start).Round(time.Millisecond), e0, e, v0, v)
	return true
}

// pollMoving polls cond every second for at most d, and gives up early
// once the table has not moved for 20 s: a stopped tracking worker will not
// make cond true. It returns cond's last answer and how long ago the table
// last moved.
func (s *suite) pollMoving(d time.Duration, cond func() bool) (bool, time.Duration) {
	_, lastV := s.progress()
	lastMove := time.Now()
	ok := false
	poll(s.ctx, d, time.Second, func() bool {
		if ok = cond(); ok {
			return true
		}
		if _, v := s.progress(); v != lastV {
			lastV, lastMove = v, time.Now()
		}
		return time.Since(lastMove) > 20*time.Second
	})
	return ok, time.Since(lastMove)
}

// consumed is the process's consumed-messages counter.
func (s *suite) consumed(p *proc) (float64, bool) {
	name := "itel_worker_messages_consumed_total"
	if p == s.enrich {
		name = "kpipe_enrich_events_consumed_total"
	}
	return p.metric(s.ctx, name)
}

// logTails logs the last lines of the workers, for a stopped pipeline.
func (s *suite) logTails() {
	for _, p := range []*proc{s.enrich, s.worker} {
		var keep []string
		for _, l := range p.lastLines(40) {
			if !strings.Contains(l, `"component":"kgo"`) {
				keep = append(keep, l)
			}
		}
		s.t.Logf("last lines of %s:\n%s", p.name, strings.Join(keep[max(0, len(keep)-8):], "\n"))
	}
}

func (s *suite) sampleCount(proc string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, x := range s.samples {
		if x.proc == proc {
			n++
		}
	}
	return n
}

// finish stops the stream and waits for the pipeline to drain.
func (s *suite) finish() {
	s.closeReady()
	if err := s.simStream.stop(time.Minute); err != nil {
		s.fail("exits", "stopping the stream: %v", err)
	}
	s.mu.Lock()
	stuck := s.stuck
	s.mu.Unlock()
	if stuck == "" {
		s.expectReady(time.Now(), "draining")
	}
}

// median and worst of the restart-to-consume times.
func restartStats(rs []restart) (median, worst time.Duration) {
	var ds []time.Duration
	for _, r := range rs {
		if r.consume >= 0 {
			ds = append(ds, r.consume)
		}
	}
	if len(ds) == 0 {
		return -1, -1
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], ds[len(ds)-1]
}

func joinCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}
