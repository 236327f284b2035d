package kafka

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestEmbeddedPersists restarts the embedded broker on the same port and data
// folder and finds the topic, the records and the group's committed offset.
func TestEmbeddedPersists(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "kafka")
	// Port 0: the broker takes a free port; the restart reuses it.
	e, err := StartEmbedded(ctx, EmbeddedOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != DirMode {
		t.Fatalf("data folder %s: %v %v, want mode %v", dir, err, st, os.FileMode(DirMode))
	}
	addrs := e.Addrs()
	_, portStr, err := net.SplitHostPort(addrs[0])
	if err != nil || len(addrs) != 1 || !strings.HasPrefix(addrs[0], "127.0.0.1:") {
		t.Fatalf("got addrs %v, want one 127.0.0.1 address", addrs)
	}
	port, _ := strconv.Atoi(portStr)
	if PortFree("", port) {
		t.Fatalf("port %d is free while the broker listens on it", port)
	}
	cl, err := NewClient(Config{Brokers: addrs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureTopics(ctx, cl, []TopicSpec{{Name: "t", Partitions: 2, Retention: Retention(1e12)}}, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Key: []byte{byte(i)}, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	e.Close()

	if !PortFree("", port) {
		t.Fatalf("port %d still busy after Close", port)
	}
	e, err = StartEmbedded(ctx, EmbeddedOptions{Port: port, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cl, err = NewClient(Config{Brokers: e.Addrs()}, nil, kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	n := 0
	for n < 10 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}
	if n != 10 {
		t.Fatalf("got %d records after restart, want 10", n)
	}
}
