package kafka

import (
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestPublisher(t *testing.T) {
	ctx := t.Context()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, TopicEvents))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := NewClient(Config{Brokers: c.ListenAddrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p := NewPublisher(cl, TopicEvents)
	for i := range 1000 {
		if err := p.Publish(ctx, []byte(strconv.Itoa(i%7)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Published() != 1000 {
		t.Fatalf("published %d, want 1000", p.Published())
	}

	cl2, err := NewClient(Config{Brokers: c.ListenAddrs()}, nil, kgo.RecordDeliveryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	bad := NewPublisher(cl2, "no.such.topic")
	_ = bad.Publish(ctx, nil, []byte("v"))
	if err := bad.Flush(ctx); err == nil {
		t.Fatal("publishing to a missing topic succeeded")
	}
}
