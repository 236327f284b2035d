package enrich

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/kafka"
)

// TestClassify: which Kafka errors end Run, which refuse a record, and
// which abort the transaction to try the poll again.
func TestClassify(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name  string
		err   error
		want  kafkaClass
		begin bool  // fatal when beginning a transaction fails with it
		as    error // the sentinel fatal wraps it in
	}{
		{"producer fenced", kerr.ProducerFenced, kafkaFatal, true, ErrFenced},
		{"fenced instance id", fmt.Errorf("consuming: %w", kerr.FencedInstanceID), kafkaFatal, true, ErrFenced},
		{"offset commit fenced", fmt.Errorf("unable to commit transaction offsets: %w", errors.Join(kerr.ProducerFenced)), kafkaFatal, true, ErrFenced},
		{"sasl", kerr.SaslAuthenticationFailed, kafkaFatal, true, ErrKafkaAuth},
		{"topic authorization", kerr.TopicAuthorizationFailed, kafkaFatal, true, ErrKafkaAuth},
		{"transactional id authorization", kerr.TransactionalIDAuthorizationFailed, kafkaFatal, true, ErrKafkaAuth},
		{"invalid producer epoch", kerr.InvalidProducerEpoch, kafkaRetry, true, ErrFenced},
		{"message too large", kerr.MessageTooLarge, kafkaRefused, false, ErrTransaction},
		{"record list too large", kerr.RecordListTooLarge, kafkaRefused, false, ErrTransaction},
		{"invalid record", kerr.InvalidRecord, kafkaRefused, false, ErrTransaction},
		{"out of order sequence number", kerr.OutOfOrderSequenceNumber, kafkaRetry, false, ErrTransaction},
		{"unknown producer id", kerr.UnknownProducerID, kafkaRetry, false, ErrTransaction},
		{"not coordinator", kerr.NotCoordinator, kafkaRetry, false, ErrTransaction},
		{"coordinator not available", kerr.CoordinatorNotAvailable, kafkaRetry, false, ErrTransaction},
		{"concurrent transactions", kerr.ConcurrentTransactions, kafkaRetry, false, ErrTransaction},
		{"unknown topic", kerr.UnknownTopicOrPartition, kafkaRetry, false, ErrTransaction},
		{"connection refused", fmt.Errorf("unable to dial: %w", dial), kafkaRetry, false, ErrTransaction},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, kafkaRetry, false, ErrTransaction},
		{"eof", io.EOF, kafkaRetry, false, ErrTransaction},
		{"timeout", os.ErrDeadlineExceeded, kafkaRetry, false, ErrTransaction},
		{"record timeout", kgo.ErrRecordTimeout, kafkaRetry, false, ErrTransaction},
		{"aborting", kgo.ErrAborting, kafkaRetry, false, ErrTransaction},
		{"context", context.DeadlineExceeded, kafkaRetry, false, ErrTransaction},
		{"unrecoverable producer id", fmt.Errorf("producer ID has a fatal, unrecoverable error, err: %w", kerr.OutOfOrderSequenceNumber), kafkaRetry, false, ErrTransaction},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err); got != tc.want {
				t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
			if got := fatalBegin(tc.err); got != tc.begin {
				t.Errorf("fatalBegin(%v) = %v, want %v", tc.err, got, tc.begin)
			}
			if err := fatal(ErrTransaction, "doing", tc.err); !errors.Is(err, tc.as) || !errors.Is(err, tc.err) {
				t.Errorf("fatal(%v) = %v, want it to wrap %v and the cause", tc.err, err, tc.as)
			}
		})
	}
}

// TestClassifyClientTooLarge: kgo's own refusal of a record too large for
// a produce request counts as a refused record.
func TestClassifyClientTooLarge(t *testing.T) {
	c := newCluster(t)
	cl := newClient(t, c.ListenAddrs(), kgo.ProducerBatchMaxBytes(1<<10))
	err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: kafka.TopicEnrichmentErrors, Value: make([]byte, 4<<10)}).FirstErr()
	if err == nil {
		t.Fatal("a record over ProducerBatchMaxBytes was produced")
	}
	if got := classify(err); got != kafkaRefused {
		t.Fatalf("classify(%v) = %v, want refused", err, got)
	}
}
