package kafka

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Publisher produces keyed values to one topic without waiting for each
// record, for generators such as "kpipe sim --kafka". Its Publish method has
// the shape of sim.Sink:
//
//	p := kafka.NewPublisher(cl, kafka.TopicEvents)
//	err := s.Generate(ctx, sim.GenerateOptions{}, p.Publish)
//	if ferr := p.Flush(ctx); err == nil {
//		err = ferr
//	}
//
// It is safe for concurrent use.
type Publisher struct {
	cl    *kgo.Client
	topic string

	mu  sync.Mutex
	err error
	n   int64
}

// NewPublisher returns a publisher to topic through cl.
func NewPublisher(cl *kgo.Client, topic string) *Publisher {
	return &Publisher{cl: cl, topic: topic}
}

// Publish queues one record (the publisher owns key and value from now on).
// It blocks only while the client's buffer is full, and returns the first
// failure of an earlier record, if any.
func (p *Publisher) Publish(ctx context.Context, key, value []byte) error {
	if err := p.Err(); err != nil {
		return err
	}
	p.cl.Produce(ctx, &kgo.Record{Topic: p.topic, Key: key, Value: value}, p.done)
	return nil
}

func (p *Publisher) done(_ *kgo.Record, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.err == nil {
			p.err = fmt.Errorf("publishing to %s: %w", p.topic, err)
		}
		return
	}
	p.n++
}

// Err returns the first publishing failure so far.
func (p *Publisher) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Published returns how many records the broker has acknowledged.
func (p *Publisher) Published() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Flush waits until every queued record is acknowledged or failed and
// returns the first failure.
func (p *Publisher) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing %s: %w", p.topic, err)
	}
	return p.Err()
}
