package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicState is what EnsureTopicsEach did to one topic.
type TopicState string

// The states of a TopicResult.
const (
	TopicCreated TopicState = "created"
	TopicExists  TopicState = "exists" // it was there; partitions and configs brought in line
	TopicFailed  TopicState = "failed"
)

// TopicResult is one topic's outcome of EnsureTopicsEach.
type TopicResult struct {
	Name  string
	State TopicState
	// Err is why it failed (State TopicFailed).
	Err error
}

// EnsureTopicsEach is EnsureTopics telling each topic's outcome, in the
// order of specs. A topic counts as existing only when the brokers listed
// it: when they cannot be asked at all there are no results, only the
// error.
func EnsureTopicsEach(ctx context.Context, cl *kgo.Client, specs []TopicSpec, maxReplication int) ([]TopicResult, error) {
	// Ask the brokers directly: kadm answers metadata from the client's
	// cache, which may predate topics created a moment ago.
	req := kmsg.NewPtrMetadataRequest()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("listing topics: %w", err)
	}
	if maxReplication <= 0 {
		maxReplication = max(len(resp.Brokers), 1)
	}
	existing := make(map[string]int32, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic != nil && t.ErrorCode == 0 {
			existing[*t.Topic] = int32(len(t.Partitions))
		}
	}
	adm := kadm.NewClient(cl)
	out := make([]TopicResult, 0, len(specs))
	var errs []error
	for _, s := range specs {
		var created []string
		r := TopicResult{Name: s.Name, State: TopicExists}
		if err := ensureTopic(ctx, adm, s, existing, maxReplication, &created); err != nil {
			r.State, r.Err = TopicFailed, err
			errs = append(errs, fmt.Errorf("topic %q: %w", s.Name, err))
		} else if len(created) > 0 {
			r.State = TopicCreated
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}
