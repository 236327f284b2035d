package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"kpipe/internal/delta"
)

// dropPlan is what --drop-existing would delete: nothing when there is no
// table at the location.
type dropPlan struct {
	exists      bool
	version     int64
	rows, files int64
	rowsExact   bool
}

func (p dropPlan) String() string {
	if !p.exists {
		return "no table at the location: nothing to drop"
	}
	rows := fmt.Sprint(p.rows)
	if !p.rowsExact {
		rows = "at least " + rows
	}
	return fmt.Sprintf("the table there (version %d) holds %s rows in %d data files", p.version, rows, p.files)
}

// planDrop reads the table at store, if any, for --drop-existing. A
// location that is no Delta table has nothing to drop; one that cannot be
// read is an error (dropping it blind could delete what was not meant).
func planDrop(ctx context.Context, store delta.Storage) (dropPlan, error) {
	tb, err := delta.Open(ctx, store)
	if errors.Is(err, delta.ErrNotATable) || errors.Is(err, delta.ErrNotExist) {
		return dropPlan{}, nil
	}
	if err != nil {
		return dropPlan{}, fmt.Errorf("reading the table to drop: %w", err)
	}
	snap, err := tb.Snapshot(ctx)
	if err != nil {
		return dropPlan{}, fmt.Errorf("reading the table to drop: %w", err)
	}
	d := delta.Describe(store.Location(), snap)
	return dropPlan{exists: true, version: d.Version, rows: d.NumRows, files: int64(d.NumFiles), rowsExact: d.RowsExact}, nil
}

// confirmDrop says what dropping deletes and gets the go-ahead: --yes, or
// "y" typed on a terminal. Off a terminal without --yes it refuses (a
// script must say it means it).
func confirmDrop(env *Env, location string, p dropPlan, yes bool) error {
	if !p.exists {
		return nil
	}
	fmt.Fprintf(env.Stdout, "dropping %s: %s\n", location, p)
	if yes || p.files == 0 && p.rows == 0 {
		return nil
	}
	if env.Stdin == nil || !isTerminal(env.Stdin) || !isTerminal(env.Stdout) {
		return usage(fmt.Errorf("--drop-existing deletes %d rows in %d files at %s: add --yes to confirm (not on a terminal, nothing to ask)", p.rows, p.files, location))
	}
	fmt.Fprint(env.Stdout, "delete them? [y/N] ")
	answer, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && answer == "" {
		return errors.New("not confirmed: nothing dropped")
	}
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return errors.New("not confirmed: nothing dropped")
	}
	return nil
}
