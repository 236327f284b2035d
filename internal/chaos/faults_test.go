//go:build linux

package chaos

// This file is what the suite does to the system: kill -9 trials and
// measured restarts, ClaimX fault storms and outages, storage faults.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// killTrials kills a process at a random point of the stream, trials times,
// and restarts it. Every kind of process is killed once before any twice.
func (s *suite) killTrials(trials int) {
	kinds := []string{"worker", "enrich", "broker", "sim"}
	var order []string
	for len(order) < trials {
		round := slices.Clone(kinds)
		s.rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		order = append(order, round...)
	}
	order = order[:trials]
	for i, kind := range order {
		if s.skip(fmt.Sprintf("trial %d", i+1)) {
			break
		}
		s.waitProgress(fmt.Sprintf("trial %d: random point before killing %s", i+1, kind), int64(10+s.rng.IntN(150)), 2*time.Minute)
		s.closeReady()
		s.kill(kind, i+1)
		if s.waitProgress(fmt.Sprintf("trial %d: after killing %s", i+1, kind), 20, 2*time.Minute) {
			s.expectReady(time.Now(), fmt.Sprintf("healthy after trial %d (%s killed)", i+1, kind))
		}
	}
	if trials > 0 {
		s.closeReady()
		s.expectReady(time.Now(), "healthy after the kills")
	}
}

func (s *suite) kill(kind string, trial int) {
	s.mu.Lock()
	s.kills[kind]++
	s.mu.Unlock()
	switch kind {
	case "worker", "enrich":
		p := s.worker
		if kind == "enrich" {
			p = s.enrich
		}
		s.t.Logf("trial %d: kill -9 %s", trial, kind)
		p.kill()
		s.restartMeasured(p, kind)
	case "broker":
		before := map[*proc]float64{}
		for _, p := range []*proc{s.enrich, s.worker} {
			before[p], _ = s.consumed(p)
		}
		s.t.Logf("trial %d: kill -9 broker", trial)
		at := time.Now()
		s.broker.kill()
		// Both workers must report the broker unreachable before it is back.
		for _, p := range []*proc{s.enrich, s.worker} {
			if !poll(s.ctx, 30*time.Second, 250*time.Millisecond, func() bool { c, _ := p.readyz(s.ctx); return c == http.StatusServiceUnavailable }) {
				s.fail("readiness", "%s: /readyz did not answer 503 within 30 s of the broker's death (last: %s)", p.name, lastSample(p, s))
			}
		}
		s.t.Logf("broker down %s; restarting it", time.Since(at).Round(time.Millisecond))
		restarted := time.Now()
		s.startAwait(s.broker, "the broker's ready line", func(l logLine) bool { return strings.HasPrefix(l.text, "broker listening on ") })
		for _, p := range []*proc{s.enrich, s.worker} {
			p := p
			ok := poll(s.ctx, 2*time.Minute, 200*time.Millisecond, func() bool {
				c, ok := s.consumed(p)
				return ok && c > before[p]
			})
			if ok {
				s.recordRestart(restart{proc: "broker→" + p.name, consume: time.Since(restarted)})
			} else {
				s.fail("progress", "%s did not consume within 3 min of the broker's restart", p.name)
			}
		}
	case "sim":
		before, _ := s.consumed(s.enrich)
		s.t.Logf("trial %d: kill -9 the ClaimX simulator", trial)
		s.simAPI.kill()
		if !poll(s.ctx, 45*time.Second, 250*time.Millisecond, func() bool { c, _ := s.enrich.readyz(s.ctx); return c == http.StatusServiceUnavailable }) {
			s.fail("readiness", "enrich: /readyz did not answer 503 within 45 s of ClaimX going away (last: %s)", lastSample(s.enrich, s))
		}
		restarted := time.Now()
		s.startAwait(s.simAPI, "the simulator's address", func(l logLine) bool { return strings.HasPrefix(l.text, "ClaimX simulator on http://") })
		if poll(s.ctx, 2*time.Minute, 200*time.Millisecond, func() bool { c, ok := s.consumed(s.enrich); return ok && c > before }) {
			s.recordRestart(restart{proc: "sim→enrich", consume: time.Since(restarted)})
		}
	}
}

// restartMeasured restarts p and measures the time to consuming again and
// to /readyz 200.
func (s *suite) restartMeasured(p *proc, kind string) {
	s.startAwait(p, "metrics_serving", isMetricsServing)
	start := p.startedAt()
	r := restart{proc: kind, consume: -1, ready: -1}
	poll(s.ctx, 2*time.Minute, 100*time.Millisecond, func() bool {
		if r.ready < 0 {
			if c, _ := p.readyz(s.ctx); c == http.StatusOK {
				r.ready = time.Since(start)
			}
		}
		if r.consume < 0 {
			if c, ok := s.consumed(p); ok && c > 0 {
				r.consume = time.Since(start)
			}
		}
		return r.ready >= 0 && r.consume >= 0
	})
	if r.consume < 0 {
		s.fail("progress", "%s did not consume within 3 min of its restart", kind)
		return
	}
	if r.ready < 0 {
		s.fail("readiness", "%s did not report ready within 3 min of its restart", kind)
	}
	s.recordRestart(r)
	if r.consume > 10*time.Second {
		s.fail("restart", "%s consumed again %s after its restart (target 10 s)", kind, r.consume.Round(time.Millisecond))
	}
}

func (s *suite) recordRestart(r restart) {
	s.mu.Lock()
	s.restarts = append(s.restarts, r)
	s.mu.Unlock()
	s.t.Logf("restart of %s: consuming again after %s (ready after %s)", r.proc, r.consume.Round(time.Millisecond), r.ready.Round(time.Millisecond))
}

func lastSample(p *proc, s *suite) string {
	c, b := p.readyz(s.ctx)
	return fmt.Sprintf("%d %q", c, b)
}

// setFaults installs faults on the ClaimX simulator.
func (s *suite) setFaults(js string) {
	req, _ := http.NewRequestWithContext(s.ctx, http.MethodPut, "http://"+s.simAddr+"/admin/faults", strings.NewReader(js))
	resp, err := httpc.Do(req)
	if err != nil {
		s.t.Fatalf("PUT /admin/faults %s: %v", js, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		s.t.Fatalf("PUT /admin/faults %s: %s", js, resp.Status)
	}
}

// storm runs faults until the enrichment worker has committed 100 events
// through them (or 30 s pass): the pipeline must keep going, slower, and
// recover once they end.
func (s *suite) storm(name, faults string) {
	if s.skip(name) {
		return
	}
	s.closeReady()
	s.t.Logf("%s: faults %s", name, faults)
	s.setFaults(faults)
	e0, _ := s.progress()
	ok := poll(s.ctx, 30*time.Second, 250*time.Millisecond, func() bool { e, _ := s.progress(); return e >= e0+100 })
	e1, _ := s.progress()
	s.t.Logf("%s: enrich committed %d events under it (progressed: %v)", name, e1-e0, ok)
	s.setFaults(`{}`)
	if s.waitProgress(name+": recovery", 50, 2*time.Minute) {
		s.expectReady(time.Now(), "healthy after the "+name)
	}
}

// claimxOutage answers every ClaimX request 503 for d, longer than every
// timeout: the enrichment worker must pause (not ready, with the reason)
// and resume by itself; the tracking worker stays ready (degraded at most).
func (s *suite) claimxOutage(d time.Duration) {
	if s.skip("ClaimX outage") {
		return
	}
	s.closeReady()
	s.t.Logf("ClaimX outage for %s", d)
	from := time.Now()
	s.setFaults(`{"error_rates":{"503":1}}`)
	// The outage lasts d: a scenario length, not a wait for a condition.
	select {
	case <-s.ctx.Done():
		return
	case <-time.After(d):
	}
	to := time.Now()
	s.setFaults(`{}`)
	s.expect("enrich", "not_ready", "ClaimX outage", from, to, 30*time.Second)
	s.expect("worker", "ready", "ClaimX outage (the tracking worker only degrades)", from, to, 0)
	if s.waitProgress("ClaimX outage: recovery", 50, 2*time.Minute) {
		s.expectReady(time.Now(), "healthy after the ClaimX outage")
	}
}

// storageFault makes the table's folders read-only until the tracking
// worker reports not ready (or a minute passes), then restores them. When
// the suite is root the worker runs as an unprivileged user, so the
// permissions bite.
func (s *suite) storageFault() {
	if s.skip("storage fault") {
		return
	}
	s.closeReady()
	dir := filepath.Join(s.data, "delta", tableName)
	modes := map[string]os.FileMode{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if fi, err := d.Info(); err == nil {
				modes[p] = fi.Mode().Perm()
				os.Chmod(p, 0o555)
			}
		}
		return nil
	})
	s.t.Logf("storage fault: %d table folders read-only", len(modes))
	from := time.Now()
	went := poll(s.ctx, time.Minute, 250*time.Millisecond, func() bool { c, _ := s.worker.readyz(s.ctx); return c == http.StatusServiceUnavailable })
	if went {
		// Keep the fault a little longer: readiness must hold, and the
		// worker must not exit.
		n0 := s.sampleCount("worker")
		poll(s.ctx, 30*time.Second, 250*time.Millisecond, func() bool { return s.sampleCount("worker") >= n0+10 })
	}
	to := time.Now()
	for p, m := range modes {
		os.Chmod(p, m)
	}
	s.t.Logf("storage fault lifted after %s (worker went not-ready: %v)", to.Sub(from).Round(time.Millisecond), went)
	s.expect("worker", "not_ready", "table storage read-only", from, to, time.Minute)
	s.expect("enrich", "ready", "table storage read-only (enrich does not use it)", from, to, 0)
	if s.waitProgress("storage fault: recovery", 50, 2*time.Minute) {
		s.expectReady(time.Now(), "healthy after the storage fault")
	}
}
