package cli

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/kafka"
	"kpipe/internal/sim"
)

func TestEnrichNeedsBrokers(t *testing.T) {
	var out, errb bytes.Buffer
	vars := map[string]string{"CLAIMX_API_BASE_URL": "http://127.0.0.1:1", "CLAIMX_API_TOKEN": "t"}
	env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	code := run(t.Context(), env, []string{"--config-dir", "../../config", "enrich"})
	if code != ExitUsage || !strings.Contains(errb.String(), "KAFKA_BOOTSTRAP_SERVERS") || !strings.Contains(errb.String(), "kpipe up") {
		t.Fatalf("exit %d, stderr:\n%s", code, errb.String())
	}
}

// TestEnrichCommand runs "kpipe enrich" against kfake and the simulator until
// the first tracking record, then stops it as SIGINT would: exit 0.
func TestEnrichCommand(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := sim.New(sim.Options{Seed: 2, Projects: 5})
	srv := httptest.NewServer(s)
	defer srv.Close()
	addrs := strings.Join(c.ListenAddrs(), ",")
	vars := map[string]string{"KAFKA_BOOTSTRAP_SERVERS": addrs, "CLAIMX_API_BASE_URL": srv.URL, "CLAIMX_API_TOKEN": sim.DefaultToken}
	getenv := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	var out bytes.Buffer
	if code := run(t.Context(), &Env{Stdout: &out, Stderr: &out, Getenv: getenv}, []string{"--config-dir", "../../config", "topics", "create"}); code != ExitOK {
		t.Fatalf("topics create: %d\n%s", code, out.String())
	}
	cl, err := kafka.NewClient(kafka.Config{Brokers: c.ListenAddrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	err = s.Generate(t.Context(), sim.GenerateOptions{}, func(ctx context.Context, k, v []byte) error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: kafka.TopicEvents, Key: k, Value: v}).FirstErr()
	})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &Env{Stdout: logs, Stderr: logs, Getenv: getenv},
			[]string{"--config-dir", "../../config", "--log-level", "warn", "enrich", "--metrics-addr", "127.0.0.1:0", "--transactional-id", "cli-test"})
	}()
	rd, err := kafka.NewClient(kafka.Config{Brokers: c.ListenAddrs()}, nil, kgo.ConsumeTopics("itel.cabinet.task.tracking"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for n := 0; n == 0; {
		fs := rd.PollRecords(t.Context(), 1)
		if err := fs.Err0(); err != nil {
			t.Fatalf("no tracking record: %v\n%s", err, logs)
		}
		n = fs.NumRecords()
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("enrich exited %d after cancel, want 0\n%s", code, logs)
	}
}
