package pipeline

import "context"

// The worker runs a chain in two parts (see worker_inflight.go): the head,
// every handler before the buffering one, for several polls at once; and
// the tail, the buffering handler (delta_writer), for one poll at a time,
// in poll order, so that it sees each partition's events in offset order.

// splitAt is the index of the first tail stage: the buffering handler's,
// or len(stages) when no handler buffers.
func (c *Chain) splitAt() int {
	if c.flusher != nil {
		return len(c.stages) - 1
	}
	return len(c.stages)
}

// processHead runs evs through the handlers before the buffering one, as
// Process does.
func (c *Chain) processHead(ctx context.Context, evs []*Event, failed []*Event) ([]*Event, []*Event, error) {
	return c.processStages(ctx, c.stages[:c.splitAt()], evs, failed)
}

// processTail runs what processHead returned through the buffering
// handler (nothing when there is none).
func (c *Chain) processTail(ctx context.Context, evs []*Event, failed []*Event) ([]*Event, []*Event, error) {
	return c.processStages(ctx, c.stages[c.splitAt():], evs, failed)
}

func (c *Chain) processStages(ctx context.Context, stages []*observed, evs []*Event, failed []*Event) ([]*Event, []*Event, error) {
	cur := evs
	var err error
	for _, st := range stages {
		if len(cur) == 0 {
			break
		}
		cur, failed, err = st.process(ctx, cur, failed)
		if err != nil {
			return nil, failed, err
		}
	}
	return cur, failed, nil
}
