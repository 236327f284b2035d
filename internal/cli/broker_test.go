package cli

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/kafka"
)

var brokerReadyRE = regexp.MustCompile(`(?m)^broker listening on (127\.0\.0\.1:(\d+))$`)

// TestBrokerProcess runs "kpipe broker" as an OS process the way the chaos
// suite does: it reports ready on one line with the free port it took, has
// the topics, refuses a second broker on its data folder, survives kill -9
// with its records, and stops on SIGTERM with exit 0.
func TestBrokerProcess(t *testing.T) {
	data := filepath.Join(t.TempDir(), "kafka")
	args := []string{"--config-dir", repoConfig(), "broker", "--addr", "127.0.0.1:0", "--data-dir", data, "--create-topics"}
	b := startKpipe(t, nil, args...)
	m := b.waitLine(t, brokerReadyRE)
	addr, port := m[1], m[2]
	checkMode(t, data, dirMode)

	cl, err := kafka.NewClient(kafka.Config{Brokers: []string{addr}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{kafka.TopicEvents, kafka.TopicEnrichmentErrors, "itel.cabinet.task.tracking"} {
		if !topics.Has(name) {
			t.Fatalf("topic %s missing after --create-topics (have %v)", name, topics.Names())
		}
	}
	for i := range 10 {
		if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: kafka.TopicEvents, Key: []byte{byte(i)}, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// A second broker on the same folder is refused, naming the first.
	second := startKpipe(t, nil, "broker", "--addr", "127.0.0.1:0", "--data-dir", data)
	if code := second.exitCode(); code != ExitFailure {
		t.Fatalf("second broker on %s: exit %d, want %d\n%s", data, code, ExitFailure, second.errOut)
	}
	if want := "kpipe broker (pid " + strconv.Itoa(b.cmd.Process.Pid) + ")"; !strings.Contains(second.errOut.String(), want) {
		t.Fatalf("second broker's error lacks %q:\n%s", want, second.errOut)
	}

	// kill -9, then a restart on the same port and folder takes over the
	// dead process's lock and still holds the records.
	b.signal(t, syscall.SIGKILL)
	b.exitCode()
	b = startKpipe(t, nil, "broker", "--port", port, "--data-dir", data)
	if m := b.waitLine(t, brokerReadyRE); m[1] != addr {
		t.Fatalf("restarted broker on %s, want %s", m[1], addr)
	}
	rd, err := kafka.NewClient(kafka.Config{Brokers: []string{addr}}, nil,
		kgo.ConsumeTopics(kafka.TopicEvents), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for n := 0; n < 10; {
		fs := rd.PollFetches(t.Context())
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}

	b.signal(t, syscall.SIGTERM)
	if code := b.exitCode(); code != ExitOK {
		t.Fatalf("broker after SIGTERM: exit %d\n%s", code, b.errOut)
	}
}

func TestBrokerHelpAndFlags(t *testing.T) {
	code, out, _ := runCLI(t, nil, "broker", "--help")
	if code != ExitOK || !strings.Contains(out, "broker listening on HOST:PORT") || !strings.Contains(out, "--data-dir") {
		t.Fatalf("help: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{
		{"broker", "--addr", "nonsense"},
		{"broker", "--port", "70000"},
		{"broker", "--sync-writes"},
		{"broker", "--topics-file", "x.yaml"},
		{"broker", "extra"},
	} {
		if code, _, errOut := runCLI(t, nil, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, errOut)
		}
	}
}
