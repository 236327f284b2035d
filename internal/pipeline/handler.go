package pipeline

import (
	"context"
	"time"
)

// Handler is one step of a worker's enrichment chain.
//
// Handle processes one event and returns the events to pass on: usually ev
// itself (changed in place), several events to fan out, or none with a nil
// error when the event is filtered (skipped on purpose: no row, no error
// record). A non-nil error fails only this event: it goes to the error topic
// with the handler's name and the error's class (see HandlerError); the rest
// of the batch carries on. An error that means the handler cannot work at all
// (ctx done) stops the batch.
//
// The chain calls Handle for the events of one poll's partition batch in
// offset order, and for different batches from different goroutines: with
// several polls in flight (the worker's polls_in_flight), a handler before
// the buffering one may see a partition's next batch while the previous one
// is still in it. The buffering handler (a Flusher, last) sees each
// partition's events in offset order, one poll at a time. So a Handler must
// be safe for concurrent use and keep no order-dependent state unless it
// buffers. Handle may block (a lookup waits on the API)
// and must honour ctx. Close releases resources after the last Handle.
type Handler interface {
	Handle(ctx context.Context, ev *Event) ([]*Event, error)
	Close(ctx context.Context) error
}

// Result is the outcome of one input event of HandleBatch, with the meaning
// of Handle's return values.
type Result struct {
	Events []*Event
	Err    error
}

// BatchHandler is implemented by handlers that gain from seeing a whole
// partition batch at once (the lookup runs its calls concurrently). The chain
// calls HandleBatch instead of Handle when a handler has it. It returns one
// Result per input, in input order; a non-nil error fails the whole batch as
// in Handle.
type BatchHandler interface {
	HandleBatch(ctx context.Context, evs []*Event) ([]Result, error)
}

// Mark is the last offset of a partition the worker has fully handled.
type Mark struct {
	Topic     string
	Partition int32
	Offset    int64
}

// FlushResult says what a Flush made durable.
type FlushResult struct {
	// Table names the destination (a table name) and Version is the table
	// version the flush committed; Version is -1 when nothing was written.
	Table   string
	Version int64
	// Written are the events whose rows the flush committed, per partition in
	// offset order. Their Fields may hold only what the worker retained
	// (fieldRetaining).
	Written []*Event
	// Rows are the last rows the flush committed (at most metrics.MaxRecentRows),
	// column by column as the table got them, for the live page.
	Rows []map[string]any
	// Rejected are events the destination refused at flush time (a
	// schema_conflict found only while committing); each carries its error in
	// Errors. They are not written.
	Rejected []*Event
	// Skipped counts buffered events dropped because the destination already
	// held them (an offset at or below its stored mark).
	Skipped int
	// Duplicates counts buffered events dropped because their key was in
	// the destination already, or earlier in the same flush (the
	// delta_writer's dedupe). They are handled: their offsets move on, and
	// no success record is published for them.
	Duplicates int
}

// Rejection is a buffered event the destination refused while committing,
// with why.
type Rejection struct {
	Event *Event
	Err   *HandlerError
}

// PendingCommit is what a flush is about to make durable: the commit
// publisher makes the records about it durable first.
type PendingCommit struct {
	// Table and Version name the destination and the version the commit is
	// attempted as (-1: unknown). A concurrent writer can make the commit
	// land at a later version.
	Table   string
	Version int64
	// Written are the events whose rows the commit holds; Rejected those
	// it leaves out.
	Written  []*Event
	Rejected []Rejection
}

// CommitPublisher makes the records of a pending commit durable (error
// records of the rejected events, success records of the written ones)
// before the commit that moves the stored offsets past them. An error stops
// the commit; it is retried with the flush. Records it published for a
// commit that then failed are published again with the retry: at least
// once, keyed by their source offset.
type CommitPublisher func(ctx context.Context, c *PendingCommit) error

// commitPublishing is implemented by flushers that call a CommitPublisher
// before each commit.
type commitPublishing interface {
	SetCommitPublisher(CommitPublisher)
}

// fieldRetaining is implemented by flushers that can drop the fields of a
// buffered event the worker does not read after the commit: the worker
// names the top-level fields it reads (success record fields, the status
// field), and the rest of the decoded event is freed while its row waits.
type fieldRetaining interface {
	RetainFields(names []string)
}

// Flusher is implemented by handlers that buffer what they accept (the Delta
// writer): an event they return from Handle is only durable after a Flush.
//
// The worker calls FlushDue after every batch and flushes when it is due,
// when partitions are revoked and on shutdown. Flush makes everything
// buffered durable together with marks, atomically, so that
// StoredOffsets(...) afterwards returns them; it is safe to call Flush again
// after it failed. The worker never calls Flush concurrently with Handle.
type Flusher interface {
	// FlushDue reports whether buffered data should be flushed now (rows,
	// bytes or age over their limits), and otherwise when it will be.
	// next is zero when nothing is buffered.
	FlushDue(now time.Time) (due bool, next time.Time)
	// Flush commits everything buffered with marks.
	Flush(ctx context.Context, marks []Mark) (*FlushResult, error)
	// StoredOffsets returns, for each partition of topic with a stored mark,
	// the last offset already durable.
	StoredOffsets(ctx context.Context, topic string, partitions []int32) (map[int32]int64, error)
	// Discard drops the buffered events of a partition with an offset above
	// after: the worker lost the partition, or could not finish handling
	// what it polled.
	Discard(topic string, partition int32, after int64)
}

// FlushBatch is buffered data an AsyncFlusher took out for one commit.
type FlushBatch interface {
	// Len is the number of buffered events it holds.
	Len() int
}

// AsyncFlusher is a Flusher whose buffer can be taken out and committed
// while new events are being buffered, so that encoding and writing happen
// off the consume path.
//
// Take empties the buffer and returns what it held; the caller passes it
// to Commit with the marks that cover it (the last handled offset of each
// partition when Take ran). Commit does what Flush does for that batch;
// after a failure it may be called again with the same batch. Commit runs
// concurrently with Handle, FlushDue, Discard and Take, never with another
// Commit or Flush; Discard only drops events still in the buffer.
type AsyncFlusher interface {
	Flusher
	Take() FlushBatch
	Commit(ctx context.Context, b FlushBatch, marks []Mark) (*FlushResult, error)
}
