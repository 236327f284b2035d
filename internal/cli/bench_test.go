package cli

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/kafka"
)

// TestBenchVerifiesTable runs kpipe bench as an OS process, which runs the
// worker as its own process: the table must hold every event once, the
// lookup must call the API at most once per key, and the report must name
// every figure.
func TestBenchVerifiesTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		keys int
	}{
		{name: "burst_many_keys", args: []string{"--events", "3000", "--keys", "40", "--partitions", "2"}, keys: 40},
		{name: "rate", args: []string{"--events", "600", "--rate", "600"}, keys: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startKpipe(t, nil, append([]string{"--config-dir", "../../config", "--log-level", "warn", "bench"}, tc.args...)...)
			if code := p.exitCode(); code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, p.out, p.errOut)
			}
			out := p.out.String()
			if !strings.Contains(out, "verified        OK") {
				t.Fatalf("not verified:\n%s", out)
			}
			events := tc.args[1]
			if !regexp.MustCompile(`table\s+` + events + ` rows, ` + events + ` distinct events, 0 duplicates, 0 missing`).MatchString(out) {
				t.Errorf("table line wrong:\n%s", out)
			}
			m := regexp.MustCompile(`api calls\s+(\d+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no api calls line:\n%s", out)
			}
			if n, _ := strconv.Atoi(m[1]); n < 1 || n > tc.keys {
				t.Errorf("api calls %d, want 1..%d (one per key per TTL)", n, tc.keys)
			}
			for _, want := range []string{"worker cpu", "worker peak rss", "µs/event", "anonymous", "file pages"} {
				if !strings.Contains(out, want) {
					t.Errorf("report lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(strings.Join(tc.args, " "), "--rate") && !regexp.MustCompile(`latency\s+p50 \S+, p90 \S+, p99 \S+`).MatchString(out) {
				t.Errorf("no latency line:\n%s", out)
			}
		})
	}
}

// TestBenchExistingBroker runs kpipe bench --kafka against a broker it did
// not start: the run is verified and its topics are deleted after.
func TestBenchExistingBroker(t *testing.T) {
	b, err := kafka.StartEmbedded(t.Context(), kafka.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := startKpipe(t, nil, "--config-dir", "../../config", "--log-level", "warn", "bench", "--events", "500", "--kafka", b.Addrs()[0])
	if code := p.exitCode(); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, p.out, p.errOut)
	}
	if !strings.Contains(p.out.String(), "verified        OK") {
		t.Fatalf("not verified:\n%s", p.out)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for name := range topics {
		if strings.HasPrefix(name, "kpipe.bench.") {
			t.Errorf("topic %s left on the broker", name)
		}
	}
}
