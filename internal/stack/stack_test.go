package stack

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"kpipe/internal/config"
	"kpipe/internal/kafka"
	"kpipe/internal/pipeline"
	"kpipe/internal/plugin"
)

const repoConfig = "../../config"

// loadRepoConfig loads the repository's configuration with getenv.
func loadRepoConfig(getenv func(string) (string, bool)) (*config.Config, error) {
	return config.Load(repoConfig, config.WithEnv(getenv), config.WithHandlers(pipeline.DefaultRegistry()), config.WithPlugins(plugin.DefaultRegistry()))
}

// options are a stack's options on the cluster c, writing to out.
func options(t *testing.T, c *kfake.Cluster, out *syncBuffer) Options {
	return Options{
		LoadConfig:  loadRepoConfig,
		ConfigDir:   repoConfig,
		DataDir:     t.TempDir(),
		Worker:      "itel_cabinet_tracking_worker",
		Kafka:       &kafka.Config{Brokers: c.ListenAddrs(), ClientID: "stack-test"},
		IDPrefix:    "stack-test-",
		Seed:        1,
		WaitTimeout: time.Minute,
		MetricsAddr: "127.0.0.1:0",
		Out:         out,
		Logger:      slog.New(slog.DiscardHandler),
	}
}

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// listenable fails the test unless addr can be listened on: whoever held
// it let it go.
func listenable(t *testing.T, what, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s %s still held: %v", what, addr, err)
	}
	ln.Close()
}

// TestNewFailsCleanly: a stack whose configuration names no such worker
// fails with ErrInvalid and leaves nothing listening.
func TestNewFailsCleanly(t *testing.T) {
	o := options(t, newCluster(t), &syncBuffer{})
	o.Worker = "no_such_worker"
	o.APIAddr = freeAddr(t)
	_, err := New(t.Context(), o)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "itel_cabinet_tracking_worker") {
		t.Fatalf("got %v, want an ErrInvalid naming the known workers", err)
	}
	listenable(t, "the API address", o.APIAddr)
}

// TestCloseWithoutRun: Close alone releases a stack that never ran (the
// API and metrics listeners, both workers), and a second Close does
// nothing.
func TestCloseWithoutRun(t *testing.T) {
	o := options(t, newCluster(t), &syncBuffer{})
	o.APIAddr, o.MetricsAddr = freeAddr(t), freeAddr(t)
	s, err := New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if in := s.Info(); in.Metrics == nil || in.APIURL != "http://"+o.APIAddr || in.TrackGroup != "stack-test-itel_cabinet_tracking_worker_group" {
		t.Errorf("info %+v", in)
	}
	for range 2 {
		if err := s.Close(t.Context()); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	listenable(t, "the API address", o.APIAddr)
	listenable(t, "the metrics address", o.MetricsAddr)
}

// TestRunEvents generates a few hundred events, waits for the table and
// checks it against the simulator's ground truth.
func TestRunEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	out := &syncBuffer{}
	o := options(t, newCluster(t), out)
	o.Events = 400
	s, err := New(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.WithoutCancel(t.Context()))
	if err := s.Run(t.Context()); err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	for _, want := range []string{"generated 400 events", "stopping: flushing the table", "OK: the table holds every tracked event exactly once"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if err := s.Run(t.Context()); err == nil {
		t.Fatal("a second Run: got no error")
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
