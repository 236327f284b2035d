package cli

import (
	"context"

	"kpipe/internal/stack"
)

// tableRows reads every row of the Delta table at path.
func tableRows(ctx context.Context, path string) ([]map[string]any, error) {
	return stack.TableRows(ctx, path)
}
