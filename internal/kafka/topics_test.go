package kafka

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
)

func TestLoadTopicsRepoFile(t *testing.T) {
	specs, err := LoadTopics("../../config/topics.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		parts int32
		days  int
	}{
		"claimx.events":                      {6, 7},
		"claimx.enrichment.errors":           {1, 30},
		"itel.cabinet.task.tracking":         {3, 7},
		"itel.cabinet.task.tracking.success": {1, 3},
		"itel.cabinet.task.tracking.errors":  {1, 30},
	}
	if len(specs) != len(want) {
		t.Fatalf("got %d topics, want %d", len(specs), len(want))
	}
	for _, s := range specs {
		w, ok := want[s.Name]
		if !ok {
			t.Fatalf("unexpected topic %q", s.Name)
		}
		if s.Partitions != w.parts || time.Duration(s.Retention) != time.Duration(w.days)*24*time.Hour {
			t.Errorf("%s: got %d partitions, %v retention; want %d, %dd", s.Name, s.Partitions, time.Duration(s.Retention), w.parts, w.days)
		}
		if s.ReplicationFactor != DefaultReplicationFactor {
			t.Errorf("%s: replication %d, want default %d", s.Name, s.ReplicationFactor, DefaultReplicationFactor)
		}
	}
}

func TestParseTopicsErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "topics:\n  - name: a\n    partitions: 1\n    retention: 1d\n    retension: 2d\n", []string{"retension"}},
		{"every problem", "topics:\n  - name: a\n    partitions: 0\n    retention: 1d\n  - name: a\n    partitions: 1\n    retention: 1h\n    cleanup_policy: shred\n", []string{"partitions", "twice", "shred"}},
		{"bad retention", "topics:\n  - name: a\n    partitions: 1\n    retention: soon\n", []string{"soon"}},
		{"empty", "topics: []\n", []string{"no topics"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTopics([]byte(tt.yaml))
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	specs, err := ParseTopics([]byte("topics:\n  - name: a\n    partitions: 1\n    retention: -1\n"))
	if err != nil || specs[0].Retention.Ms() != "-1" {
		t.Fatalf("retention -1: got %v, %v", specs, err)
	}
}

func TestEnsureTopicsIdempotent(t *testing.T) {
	ctx := t.Context()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := NewClient(Config{Brokers: c.ListenAddrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	specs, err := LoadTopics("../../config/topics.yaml")
	if err != nil {
		t.Fatal(err)
	}
	created, err := EnsureTopics(ctx, cl, specs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != len(specs) {
		t.Fatalf("created %v, want all %d", created, len(specs))
	}
	created, err = EnsureTopics(ctx, cl, specs, 0)
	if err != nil || len(created) != 0 {
		t.Fatalf("second run: created %v, err %v; want nothing", created, err)
	}
	// A fresh client: kadm answers metadata from the client's short-lived cache.
	fresh := func() *kadm.Client {
		cl, err := NewClient(Config{Brokers: c.ListenAddrs()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return kadm.NewClient(cl)
	}
	details, err := fresh().ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "itel.cabinet.task.tracking.errors")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if got := len(details[s.Name].Partitions); got != int(s.Partitions) {
			t.Errorf("%s: %d partitions, want %d", s.Name, got, s.Partitions)
		}
	}
	rc, _ := rcs.On("itel.cabinet.task.tracking.errors", nil)
	var retention string
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" {
			retention = c.MaybeValue()
		}
	}
	if retention != "2592000000" {
		t.Fatalf("errors topic retention.ms = %q, want 30 days", retention)
	}

	// A topic with fewer partitions than asked grows.
	grow := []TopicSpec{{Name: "itel.cabinet.task.tracking", Partitions: 5, Retention: specs[2].Retention}}
	if _, err := EnsureTopics(ctx, cl, grow, 1); err != nil {
		t.Fatal(err)
	}
	details, _ = fresh().ListTopics(ctx)
	if got := len(details["itel.cabinet.task.tracking"].Partitions); got != 5 {
		t.Fatalf("after growing: %d partitions, want 5", got)
	}
}
