package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/claimx"
	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

// syncBuffer is an io.Writer safe for the command's goroutine and the test,
// which can wait for what gets written.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed and replaced on every write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written != nil {
		close(s.written)
		s.written = nil
	}
	return s.b.Write(p)
}

// waitFor waits until the buffer matches re and returns the submatches. It
// gives up when ctx ends or stop (may be nil) is closed, after a last look.
func (s *syncBuffer) waitFor(ctx context.Context, re *regexp.Regexp, stop <-chan struct{}) ([]string, error) {
	for {
		s.mu.Lock()
		m := re.FindStringSubmatch(s.b.String())
		if s.written == nil {
			s.written = make(chan struct{})
		}
		written := s.written
		s.mu.Unlock()
		if m != nil {
			return m, nil
		}
		select {
		case <-written:
		case <-stop:
			if m := re.FindStringSubmatch(s.String()); m != nil {
				return m, nil
			}
			return nil, errors.New("the writer stopped")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSimCommand(t *testing.T) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	emit := filepath.Join(t.TempDir(), "events.jsonl")
	env := &Env{Stdout: out, Stderr: errOut, Getenv: func(k string) (string, bool) {
		if k == "CLAIMX_API_TOKEN" {
			return "env-secret", true
		}
		return "", false
	}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int)
	go func() {
		done <- run(ctx, env, []string{"sim", "--addr", "127.0.0.1:0", "--seed", "3", "--projects", "20", "--faults", "latency=1ms", "--emit", emit})
	}()
	// The banner's last line is the faults.
	m, err := out.waitFor(t.Context(), regexp.MustCompile(`http://(\S+)\n  seed 3, (\d+) events(?s:.*)faults: `), nil)
	if err != nil {
		t.Fatalf("no address printed: %v: %q %q", err, out, errOut)
	}
	addr, events := m[1], m[2]
	if s := out.String(); strings.Contains(s, "env-secret") || !strings.Contains(s, "$CLAIMX_API_TOKEN") || !strings.Contains(s, "faults: latency=1ms") {
		t.Fatalf("banner: %q", s)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/api/v1/tasks/32513", nil)
	req.Header.Set("Authorization", "Bearer env-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "iTel Cabinet Repair Form") {
		t.Fatalf("GET template: %d %s", resp.StatusCode, body)
	}
	// Every event is written before the command says so; then stop it.
	if _, err := errOut.waitFor(t.Context(), regexp.MustCompile(`sim_events_written`), nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkMode(t, emit, fileMode)
	b, err := os.ReadFile(emit)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if strconv.Itoa(len(lines)) != events {
		t.Fatalf("%d events emitted, want the world's %s", len(lines), events)
	}
	for _, l := range lines {
		if _, err := claimx.ParseEvent([]byte(l)); err != nil {
			t.Fatalf("emitted %q: %v", l, err)
		}
	}
}

func TestSimCommandBadFaults(t *testing.T) {
	var out, errOut bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) (string, bool) { return "", false }}
	if code := run(t.Context(), env, []string{"sim", "--faults", "500=7"}); code != ExitUsage {
		t.Fatalf("exit %d, want %d: %s", code, ExitUsage, errOut.String())
	}
}

// TestSimKafka produces the simulator's events to claimx.events on an
// embedded broker and reads every one of them back.
func TestSimKafka(t *testing.T) {
	broker, err := kafka.StartEmbedded(t.Context(), kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	addr := broker.Addrs()[0]
	admin, err := kafka.NewClient(kafka.Config{Brokers: broker.Addrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if code, _, errOut := runCLI(t, map[string]string{"KAFKA_BOOTSTRAP_SERVERS": addr}, "--config-dir", repoConfig(), "topics", "create"); code != ExitOK {
		t.Fatalf("topics create: exit %d: %s", code, errOut)
	}
	want := sim.New(sim.Options{Seed: 3, Projects: 20}).Events()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		env := &Env{Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) (string, bool) { return "", false }}
		done <- run(ctx, env, []string{"sim", "--addr", "127.0.0.1:0", "--seed", "3", "--projects", "20", "--kafka", addr})
	}()

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("claimx.events"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]bool{}
	for len(got) < len(want) {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("polling claimx.events (%d of %d events read): %v", len(got), len(want), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			e, err := claimx.ParseEvent(r.Value)
			if err != nil {
				t.Errorf("record %d: %v", r.Offset, err)
				return
			}
			if string(r.Key) != e.ProjectID {
				t.Errorf("record key %q, want the project id %q", r.Key, e.ProjectID)
			}
			got[e.EventID] = true
		})
	}
	for _, e := range want {
		if !got[e.EventID] {
			t.Fatalf("event %s never reached claimx.events (%d of %d did)", e.EventID, len(got), len(want))
		}
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("kpipe sim --kafka exited %d: %s", code, stderr.String())
	}
}
