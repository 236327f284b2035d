package delta

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Table properties about how long the past of a table is kept.
const (
	// PropDeletedFileRetention is how long a removed data file stays on
	// storage before Vacuum may delete it (default 1 week).
	PropDeletedFileRetention = "delta.deletedFileRetentionDuration"
	// PropLogRetention is how long log entries and checkpoints are kept
	// before the cleanup after a checkpoint deletes them (default 30 days).
	PropLogRetention = "delta.logRetentionDuration"
	// PropExpiredLogCleanup turns that cleanup off when "false".
	PropExpiredLogCleanup = "delta.enableExpiredLogCleanup"
)

// Defaults of the retention properties, as in Delta.
const (
	DefaultDeletedFileRetention = 7 * 24 * time.Hour
	DefaultLogRetention         = 30 * 24 * time.Hour
)

// WithClock replaces time.Now for the retention decisions of Vacuum and of
// the log cleanup after checkpoints (tests age a table without waiting).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

func (t *Table) now() time.Time {
	if t.opts.now != nil {
		return t.opts.now()
	}
	return time.Now()
}

// intervalUnits are the units ParseInterval accepts, singular, with their
// length. Months and years are refused: their length varies, and Delta
// refuses them in interval properties too.
var intervalUnits = map[string]time.Duration{
	"week":        7 * 24 * time.Hour,
	"day":         24 * time.Hour,
	"hour":        time.Hour,
	"minute":      time.Minute,
	"second":      time.Second,
	"millisecond": time.Millisecond,
	"microsecond": time.Microsecond,
}

// ParseInterval parses the value of an interval table property the way
// Delta writes them: "interval 1 week", "interval 30 days", "2 weeks",
// "interval 1 day 12 hours" (each a number and a unit: week, day, hour,
// minute, second, millisecond, microsecond, singular or plural). A Go
// duration ("168h") is accepted too. The result is not negative.
func ParseInterval(s string) (time.Duration, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	if d, err := time.ParseDuration(in); err == nil && d >= 0 {
		return d, nil
	}
	words := strings.Fields(in)
	if len(words) > 0 && words[0] == "interval" {
		words = words[1:]
	}
	if len(words) == 0 || len(words)%2 != 0 {
		return 0, fmt.Errorf("interval %q: want pairs of a number and a unit, as in \"interval 1 week\"", s)
	}
	var total time.Duration
	for i := 0; i < len(words); i += 2 {
		n, err := strconv.ParseInt(strings.Trim(words[i], "'"), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("interval %q: %q is not a whole number of at least 0", s, words[i])
		}
		unit := strings.TrimSuffix(words[i+1], "s")
		d, ok := intervalUnits[unit]
		if !ok {
			return 0, fmt.Errorf("interval %q: unit %q is not one of week, day, hour, minute, second, millisecond, microsecond", s, words[i+1])
		}
		if n > int64((1<<63-1)/d) || total > (1<<63-1)-time.Duration(n)*d {
			return 0, fmt.Errorf("interval %q: too long", s)
		}
		total += time.Duration(n) * d
	}
	return total, nil
}

// configInterval returns an interval table property, or def when the
// table does not set it.
func (s *Snapshot) configInterval(key string, def time.Duration) (time.Duration, error) {
	v, ok := s.config(key)
	if !ok {
		return def, nil
	}
	d, err := ParseInterval(v)
	if err != nil {
		return 0, fmt.Errorf("delta: table property %s: %w (fix it with an interval such as \"interval 7 days\")", key, err)
	}
	return d, nil
}
