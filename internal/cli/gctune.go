package cli

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"

	"github.com/spf13/cobra"

	"kpipe/internal/gctune"
)

// gcHeadroomUsage is the help of --gc-headroom, on every command that
// runs workers.
const gcHeadroomUsage = "let the Go heap grow at most this fraction above the largest live heap of the last 30 s before collecting: bounds peak memory for some CPU; 0: Go's default (up to twice the last live heap); GOGC or GOMEMLIMIT in the environment replace it ($KPIPE_GC_HEADROOM)"

// addGCHeadroomFlag declares --gc-headroom on cmd, into v.
func addGCHeadroomFlag(cmd *cobra.Command, v *float64) {
	cmd.Flags().Float64Var(v, "gc-headroom", gctune.DefaultHeadroom, gcHeadroomUsage)
}

// startGCTuning starts the memory limit's tuning (internal/gctune) with
// --gc-headroom, or $KPIPE_GC_HEADROOM when the flag is not given, and
// says which in the log; tuned is false when it does not tune (headroom
// 0, or GOGC or GOMEMLIMIT set). stop ends it.
func startGCTuning(cmd *cobra.Command, env *Env, headroom float64, log *slog.Logger) (stop func(), tuned bool, err error) {
	if !cmd.Flags().Changed("gc-headroom") {
		if s, ok := env.Getenv("KPIPE_GC_HEADROOM"); ok && s != "" {
			if headroom, err = strconv.ParseFloat(s, 64); err != nil {
				return nil, false, usage(fmt.Errorf("KPIPE_GC_HEADROOM=%q: not a number", s))
			}
		}
	}
	if math.IsNaN(headroom) || headroom < 0 || headroom > 100 {
		return nil, false, usage(fmt.Errorf("--gc-headroom %v: want a fraction from 0 (off) to 100, e.g. 0.5", headroom))
	}
	stop, ok := gctune.Start(gctune.Options{Headroom: headroom}, env.Getenv)
	switch {
	case ok:
		log.Debug("gc_tuning", "headroom", headroom)
	case headroom > 0:
		log.Info("gc_tuning_off", "reason", "GOGC or GOMEMLIMIT is set in the environment")
	}
	return stop, ok, nil
}
