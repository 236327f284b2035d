package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"kpipe/internal/delta"
	"kpipe/internal/sim"
)

// tableName is the shipped worker's table (workers.yaml's table_name).
const tableName = "itel_cabinet_task_tracking"

// visible is a table version seen, and when: offsets[p] is the partition's
// txn version (its last offset in the table).
type visible struct {
	at      time.Time
	offsets []int64
}

// worker is the worker process.
type worker struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *os.File
	// mem is what watchMem read from /proc/PID/status while it ran
	// (zero where there is no /proc), set when memDone is closed.
	mem     memStatus
	memDone chan struct{}
}

func (r *run) startWorker(cfgDir, dataDir, metricsAddr string) (*worker, error) {
	lf, err := os.Create(filepath.Join(r.dir, "worker.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(r.o.Exe, "--config-dir", cfgDir, "--log-level", "warn",
		"worker", r.o.Worker, "--data", dataDir, "--metrics-addr", metricsAddr)
	if r.o.CPUProfile != "" {
		cmd.Args = append(cmd.Args, "--cpu-profile", r.o.CPUProfile)
	}
	cmd.Env = append(os.Environ(),
		"KAFKA_BOOTSTRAP_SERVERS="+joinAddrs(r.brokers),
		"CLAIMX_API_BASE_URL="+r.apiURL,
		"CLAIMX_API_TOKEN="+sim.DefaultToken)
	cmd.Env = append(cmd.Env, r.o.Env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("bench: starting the worker (%s): %w", r.o.Exe, err)
	}
	w := &worker{cmd: cmd, done: make(chan struct{}), memDone: make(chan struct{}), log: lf}
	go func() { w.err = cmd.Wait(); close(w.done) }()
	go w.watchMem()
	return w, nil
}

// memEvery is how often watchMem reads the worker's /proc status. VmHWM
// only grows, so what a read misses is what the last memEvery before the
// exit added.
const memEvery = 10 * time.Millisecond

// memStatus is the memory lines of a /proc/PID/status file, in bytes:
// the peak resident set (VmHWM) and a resident set (VmRSS) with its
// anonymous memory and file pages (RssAnon, RssFile).
type memStatus struct {
	HWM, RSS, Anon, File int64
}

// watchMem follows the worker's peak resident set, VmHWM in
// /proc/PID/status, until it exits, and keeps the split of its largest
// VmRSS read into anonymous memory and file pages. ru_maxrss cannot be
// used: os/exec starts the child with vfork, and Linux counts the
// resident set the address space had before exec (the bench's own,
// broker and produced events included) into the child's ru_maxrss.
func (w *worker) watchMem() {
	path := fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid)
	t := time.NewTicker(memEvery)
	defer t.Stop()
	var peak memStatus
	for {
		if m, ok := readMemStatus(path); ok {
			if m.RSS > peak.RSS {
				peak.RSS, peak.Anon, peak.File = m.RSS, m.Anon, m.File
			}
			peak.HWM = max(peak.HWM, m.HWM)
		}
		select {
		case <-w.done:
			w.mem = peak
			close(w.memDone)
			return
		case <-t.C:
		}
	}
}

// readMemStatus reads the memory lines of a /proc/PID/status file; false
// when it cannot be read or has no VmHWM (an exited process).
func readMemStatus(path string) (memStatus, bool) {
	var m memStatus
	b, err := os.ReadFile(path)
	if err != nil {
		return m, false
	}
	hwm := false
	for line := range strings.Lines(string(b)) {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmHWM":
			dst, hwm = &m.HWM, true
		case "VmRSS":
			dst = &m.RSS
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, false
		}
		*dst = kb * 1024
	}
	return m, hwm
}

func joinAddrs(a []string) string {
	s := ""
	for i, x := range a {
		if i > 0 {
			s += ","
		}
		s += x
	}
	return s
}

// stop ends the worker with SIGTERM (a graceful drain) and waits.
func (w *worker) stop(timeout time.Duration) error {
	select {
	case <-w.done:
	default:
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.done:
		case <-time.After(timeout):
			_ = w.cmd.Process.Kill()
			<-w.done
			return errors.New("bench: the worker did not stop within its drain time; killed")
		}
	}
	w.log.Close()
	return w.err
}

// usage returns the exited worker's CPU time and memory: its peak RSS
// is VmHWM where /proc has it, else its ru_maxrss (which can count the
// bench's own memory too, see watchMem).
func (w *worker) usage() (time.Duration, memStatus) {
	ps := w.cmd.ProcessState
	if ps == nil {
		return 0, memStatus{}
	}
	cpu := ps.UserTime() + ps.SystemTime()
	<-w.memDone
	if w.mem.HWM > 0 {
		return cpu, w.mem
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return cpu, memStatus{}
	}
	return cpu, memStatus{HWM: ru.Maxrss * 1024} // Linux: kilobytes
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady polls the worker's /readyz until it answers 200 (partitions
// assigned, consuming).
func waitReady(ctx context.Context, w *worker, addr string) error {
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: the worker did not become ready: %w", ctx.Err())
		case <-w.done:
			return fmt.Errorf("bench: the worker exited before it was ready: %v (see worker.log)", w.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// measure produces, runs the worker until the table holds every event,
// stops it and fills res.
func (r *run) measure(ctx context.Context, cfgDir string, admin *kadm.Client, res *Result) error {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	dataDir := filepath.Join(r.dir, "data")
	maddr, err := freeAddr()
	if err != nil {
		return err
	}
	prod := newProduced(r.o.Partitions)
	r.world.ResetStats()
	var start time.Time
	var w *worker
	prodDone := make(chan error, 1)
	if r.o.Rate == 0 {
		r.o.Log.Info("producing", "events", r.o.Events)
		if err := r.produce(ctx, prod); err != nil {
			return err
		}
		r.o.Log.Info("produced; starting the worker")
		start = time.Now()
		if w, err = r.startWorker(cfgDir, dataDir, maddr); err != nil {
			return err
		}
		close(prodDone)
	} else {
		if w, err = r.startWorker(cfgDir, dataDir, maddr); err != nil {
			return err
		}
		if err := waitReady(ctx, w, maddr); err != nil {
			_ = w.stop(30 * time.Second)
			return err
		}
		r.o.Log.Info("worker ready; producing", "rate", r.o.Rate)
		start = time.Now()
		go func() { prodDone <- r.produce(ctx, prod) }()
	}
	store, err := delta.OpenLocation(filepath.Join(dataDir, "delta", tableName))
	if err != nil {
		_ = w.stop(30 * time.Second)
		return err
	}
	seen, werr := r.watch(ctx, w, store, prod, prodDone)
	stopErr := w.stop(60 * time.Second)
	var mem memStatus
	res.CPU, mem = w.usage()
	res.PeakRSS, res.SampledRSS, res.SampledAnon, res.SampledFile = mem.HWM, mem.RSS, mem.Anon, mem.File
	st := r.world.Stats()
	res.APICalls, res.APIMaxInFlight = st.Requests, st.MaxInFlight
	if werr != nil {
		return errors.Join(werr, stopErr)
	}
	if stopErr != nil {
		return fmt.Errorf("bench: the worker failed: %w (see worker.log)", stopErr)
	}
	r.results(res, start, seen, prod)
	if err := r.verify(ctx, store, res); err != nil {
		return err
	}
	ends, err := admin.ListEndOffsets(ctx, r.topics.errors)
	if err == nil {
		ends.Each(func(o kadm.ListedOffset) { res.ErrorRecords += o.Offset })
	}
	return nil
}

// watch reads the table's newest version every few milliseconds until
// every produced record's offset is in its txn versions.
func (r *run) watch(ctx context.Context, w *worker, store delta.Storage, prod *produced, prodDone <-chan error) ([]visible, error) {
	var t *delta.Table
	var seen []visible
	last := int64(-1)
	produced := false
	for {
		select {
		case err, ok := <-prodDone:
			if ok && err != nil {
				return nil, err
			}
			produced = true
			prodDone = nil
		case <-ctx.Done():
			return nil, fmt.Errorf("bench: the table did not hold every event in time: %w", ctx.Err())
		case <-w.done:
			return nil, fmt.Errorf("bench: the worker exited while running: %v (see worker.log)", w.err)
		case <-time.After(5 * time.Millisecond):
		}
		if t == nil {
			var err error
			if t, err = delta.Open(ctx, store); err != nil {
				if errors.Is(err, delta.ErrNotATable) {
					continue
				}
				return nil, err
			}
		}
		snap, err := t.Snapshot(ctx)
		if err != nil {
			return nil, err
		}
		if snap.Version() == last {
			continue
		}
		now := time.Now()
		last = snap.Version()
		v := visible{at: now, offsets: make([]int64, r.o.Partitions)}
		for p := range v.offsets {
			v.offsets[p] = -1
			if o, ok := snap.TxnVersion(r.o.Worker + "-" + r.topics.input + "-" + strconv.Itoa(p)); ok {
				v.offsets[p] = o
			}
		}
		seen = append(seen, v)
		if !produced {
			continue
		}
		prod.mu.Lock()
		all := true
		for p, o := range v.offsets {
			all = all && o >= prod.last[p]
		}
		prod.mu.Unlock()
		if all {
			return seen, nil
		}
	}
}

// results computes throughput and latencies from the versions seen.
func (r *run) results(res *Result, start time.Time, seen []visible, prod *produced) {
	if len(seen) == 0 {
		return
	}
	res.Elapsed = seen[len(seen)-1].at.Sub(start)
	res.EventsPerSec = float64(r.o.Events) / res.Elapsed.Seconds()
	var first visible
	for _, v := range seen {
		for _, o := range v.offsets {
			if o >= 0 && first.offsets == nil {
				first = v
			}
		}
	}
	if first.offsets != nil {
		res.FirstVisible = first.at.Sub(start)
		after := int64(r.o.Events)
		for _, o := range first.offsets {
			after -= o + 1
		}
		if d := seen[len(seen)-1].at.Sub(first.at); d > 0 {
			res.SteadyPerSec = float64(after) / d.Seconds()
		}
	}
	if r.o.Rate == 0 {
		return
	}
	var lat []time.Duration
	done := make([]int64, r.o.Partitions)
	for p := range done {
		done[p] = -1
	}
	for _, v := range seen {
		for p, o := range v.offsets {
			for off := done[p] + 1; off <= o && off < int64(len(prod.at[p])); off++ {
				if at := prod.at[p][off]; !at.IsZero() {
					lat = append(lat, v.at.Sub(at))
				}
			}
			done[p] = max(done[p], o)
		}
	}
	sortDurations(lat)
	res.P50, res.P90, res.P99 = percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
}

// verify reads the table's event_id column: one row per event of the run.
func (r *run) verify(ctx context.Context, store delta.Storage, res *Result) error {
	t, err := delta.Open(ctx, store)
	if err != nil {
		return err
	}
	defer t.Close(ctx)
	snap, err := t.Snapshot(ctx)
	if err != nil {
		return err
	}
	res.Commits = snap.Version() + 1
	seen := make([]uint8, r.o.Events)
	err = delta.ReadColumns(ctx, store, snap, snap.Files(), []string{"event_id"}, func(b *delta.ColumnBatch) error {
		for i := range b.Len() {
			res.Rows++
			k := r.eventIndex(string(b.Bytes(0, i)))
			if k < 0 || k >= len(seen) {
				continue
			}
			if seen[k] < 255 {
				seen[k]++
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bench: reading the table: %w", err)
	}
	for _, n := range seen {
		switch {
		case n == 0:
			res.Missing++
		default:
			res.Distinct++
			res.Duplicates += int64(n) - 1
		}
	}
	return nil
}
