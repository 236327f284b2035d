// Package clock holds what kpipe's packages share about waiting: Sleep,
// which a cancelled context ends at once. It imports only the standard
// library, so every layer may use it (delta included).
package clock

import (
	"context"
	"time"
)

// Sleep waits for d, or until ctx is done, in which case it returns
// ctx.Err() at once. A d of zero or less returns ctx.Err() without
// waiting.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
