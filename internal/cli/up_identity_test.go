package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// upProcess runs kpipe up in this process until the test cancels it.
type upProcess struct {
	out, errOut *syncBuffer
	cancel      context.CancelFunc
	exited      chan struct{}
	code        int // once exited is closed
}

func startUp(t *testing.T, vars map[string]string, args ...string) *upProcess {
	t.Helper()
	u := &upProcess{out: &syncBuffer{}, errOut: &syncBuffer{}, exited: make(chan struct{})}
	env := &Env{Stdout: u.out, Stderr: u.errOut, Getenv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	ctx, cancel := context.WithCancel(t.Context())
	u.cancel = cancel
	go func() {
		u.code = run(ctx, env, append([]string{"--config-dir", repoConfig(), "--log-level", "warn", "up"}, args...))
		close(u.exited)
	}()
	t.Cleanup(func() { cancel(); <-u.exited })
	return u
}

// wait waits for kpipe up to end and returns its exit code.
func (u *upProcess) wait() int { <-u.exited; return u.code }

// waitOut waits for re in the output, failing if kpipe up ends first.
func (u *upProcess) waitOut(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	m, err := u.out.waitFor(t.Context(), re, u.exited)
	if err != nil {
		t.Fatalf("waiting for %q: %v\nstdout:\n%s\nstderr:\n%s", re, err, u.out, u.errOut)
	}
	return m
}

// TestUpSecondOnSameData: a second kpipe up on the same data folder is
// refused, naming the first.
func TestUpSecondOnSameData(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	first := startUp(t, nil, "--no-generator", "--data", data, "--kafka-port", "0", "--metrics-addr", "")
	first.waitOut(t, regexp.MustCompile(`groups `))
	// What kpipe up creates there is not for others' eyes.
	for path, want := range map[string]os.FileMode{data: dirMode, filepath.Join(data, "kafka"): dirMode, filepath.Join(data, upLockFile): fileMode} {
		checkMode(t, path, want)
	}
	code, _, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "up", "--no-generator", "--data", data, "--kafka-port", "0", "--metrics-addr", "")
	if code != ExitFailure || !strings.Contains(errOut, "data folder "+data+" is in use by kpipe up (pid") {
		t.Fatalf("second kpipe up on %s: exit %d, want %d naming the first\n%s", data, code, ExitFailure, errOut)
	}
	first.cancel()
	if code := first.wait(); code != ExitOK {
		t.Fatalf("first kpipe up: exit %d\n%s", code, first.errOut)
	}
}

// TestUpSharedCluster runs kpipe up against an outside broker: it uses
// consumer groups and a transactional id of its own, a second kpipe up on
// the same broker is refused, and when something fences its transactional
// id the whole kpipe up ends with exit 1 and the cause at ERROR.
func TestUpSharedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	first := startUp(t, nil, "--kafka", addr, "--rate", "200", "--data", t.TempDir(), "--metrics-addr", "127.0.0.1:0")
	m := first.waitOut(t, regexp.MustCompile(`metrics  http://(\S+)/metrics`))
	written := regexp.MustCompile(`(?m)^itel_worker_delta_writes_total\{[^}]*\} [1-9]`)
	waitUntil(t, func() bool { return written.MatchString(scrape(m[1])) })

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	groups, err := kadm.NewClient(cl).ListGroups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	names := groups.Groups()
	for _, g := range names {
		if !strings.HasPrefix(g, defaultUpPrefix) {
			t.Errorf("kpipe up uses group %q, want the prefix %q", g, defaultUpPrefix)
		}
	}
	if len(names) != 2 {
		t.Errorf("groups %v, want the two workers' groups", names)
	}

	old := groupSettle
	groupSettle = 0
	defer func() { groupSettle = old }()
	code, _, errOut := runCLI(t, nil, "--config-dir", repoConfig(), "up", "--kafka", addr, "--no-generator", "--data", t.TempDir(), "--metrics-addr", "")
	if code != ExitFailure || !strings.Contains(errOut, "consumer group kpipe-up-") || !strings.Contains(errOut, "in use") || !strings.Contains(errOut, "--id-prefix") {
		t.Fatalf("second kpipe up on %s: exit %d, want %d naming the groups\n%s", addr, code, ExitFailure, errOut)
	}

	// Another producer takes kpipe up's transactional id. kpipe up must not
	// keep running without its enrichment worker: either the worker is
	// fenced and kpipe up exits non-zero with the cause at ERROR (real
	// brokers answer PRODUCER_FENCED), or, where the broker answers a
	// state error instead (kfake: INVALID_TXN_STATE), the worker renews its
	// session, takes its id back and goes on enriching.
	fencer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID(defaultUpPrefix+"claimx_enrichment_worker"))
	if err != nil {
		t.Fatal(err)
	}
	defer fencer.Close()
	if _, _, err := fencer.ProducerID(t.Context()); err != nil {
		t.Fatal(err)
	}
	fencedAt := scrape(m[1])
	enriched := regexp.MustCompile(`(?m)^kpipe_enrich_events_consumed_total\{[^}]*\} (\d+)`)
	count := func(page string) string {
		if mm := enriched.FindStringSubmatch(page); mm != nil {
			return mm[1]
		}
		return ""
	}
	before := count(fencedAt)
	renewed := regexp.MustCompile(`kafka_session_renewed`)
	exited := false
	waitUntil(t, func() bool {
		select {
		case <-first.exited:
			exited = true
			return true
		default:
		}
		return renewed.MatchString(first.errOut.String()) && count(scrape(m[1])) != before
	})
	if !exited {
		return // renewed and enriching again: not a zombie
	}
	if first.code != ExitFailure {
		t.Fatalf("fenced kpipe up: exit %d, want %d\n%s", first.code, ExitFailure, first.errOut)
	}
	if s := first.errOut.String(); !regexp.MustCompile(`level=ERROR msg=worker_failed worker="enrichment worker" err=.*transaction`).MatchString(s) {
		t.Fatalf("fenced kpipe up: the cause is not at ERROR:\n%s", s)
	}
}
