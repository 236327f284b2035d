package delta

import (
	"context"
	"fmt"
)

// checkpointExists reports whether the log holds a checkpoint file of
// version v, so that a _last_checkpoint naming a version whose checkpoint
// is missing (a stale or made-up hint) is replaced by the next checkpoint
// rather than kept, which would send every reader to the listing.
func (t *Table) checkpointExists(ctx context.Context, v int64) bool {
	prefix := fmt.Sprintf("%s%020d.checkpoint.", logDir, v)
	list, err := t.store.List(ctx, prefix, "")
	if err != nil {
		return true // cannot tell: keep the hint as it is
	}
	for _, fi := range list {
		if lf, ok := parseLogFileName(fi.Key); ok && lf.kind == logCheckpoint {
			return true
		}
	}
	return false
}
