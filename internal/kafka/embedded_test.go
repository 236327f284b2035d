package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestEmbeddedPersists restarts the embedded broker on the same port and data
// folder and finds the topic, the records and the group's committed offset.
func TestEmbeddedPersists(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	port, err := FreePort("", 19092, 200)
	if err != nil {
		t.Fatal(err)
	}
	e, err := StartEmbedded(ctx, EmbeddedOptions{Port: port, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if PortFree("", port) {
		t.Fatalf("port %d is free while the broker listens on it", port)
	}
	addrs := e.Addrs()
	if len(addrs) != 1 || addrs[0] != "127.0.0.1:"+itoa(port) {
		t.Fatalf("got addrs %v, want 127.0.0.1:%d", addrs, port)
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

func itoa(i int) string {
	b := []byte{}
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	return string(b)
}
