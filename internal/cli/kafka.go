package cli

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"kpipe/internal/kafka"
)

// checkedClient checks the cluster of kcfg with kafka.Check (reachable,
// TLS, SASL) and returns a client for it: a wrong password or CA is one
// clear error naming the broker and the mechanism, not a bare EOF from the
// first request. Commands that talk to Kafka build their client with it.
func checkedClient(ctx context.Context, kcfg kafka.Config, log *slog.Logger, opts ...kgo.Opt) (*kgo.Client, error) {
	if err := kafka.Check(ctx, kcfg); err != nil {
		return nil, err
	}
	return kafka.NewClient(kcfg, log, opts...)
}
