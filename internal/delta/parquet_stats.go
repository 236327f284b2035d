package delta

import (
	"math"
	"time"
	"unicode/utf8"
)

// colStats accumulates one column's statistics.
type colStats struct {
	nulls      int64
	has        bool
	bad        bool // NaN seen: no min/max
	minI, maxI int64
	minF, maxF float64
	// minS and maxS refer to the rows' own strings (Go strings are
	// immutable), so collecting them does not copy.
	minS, maxS string
}

func (e *fileEncoder) observeString(stat int, str string) {
	s := &e.stats[stat]
	if !s.has || str < s.minS {
		s.minS = str
	}
	if !s.has || str > s.maxS {
		s.maxS = str
	}
	s.has = true
}

func (e *fileEncoder) observeFloat(stat int, f float64) {
	s := &e.stats[stat]
	if math.IsNaN(f) {
		s.bad = true
	}
	if !s.has || f < s.minF {
		s.minF = f
	}
	if !s.has || f > s.maxF {
		s.maxF = f
	}
	s.has = true
}

func (e *fileEncoder) observeInt(stat int, x int64) {
	s := &e.stats[stat]
	if !s.has || x < s.minI {
		s.minI = x
	}
	if !s.has || x > s.maxI {
		s.maxI = x
	}
	s.has = true
}

// statsStringPrefix is the number of code points of a string kept in its
// min/max statistics.
const statsStringPrefix = 32

func formatStatTime(micros int64, t DataType) string {
	ms := micros / 1000
	if micros%1000 < 0 {
		ms--
	}
	ts := time.UnixMilli(ms).UTC()
	if t == TypeTimestampNTZ {
		return ts.Format("2006-01-02T15:04:05.000")
	}
	return ts.Format("2006-01-02T15:04:05.000Z07:00")
}

func truncMin(s string) string {
	if utf8.RuneCountInString(s) <= statsStringPrefix {
		return s
	}
	i, n := 0, 0
	for n < statsStringPrefix {
		_, sz := utf8.DecodeRuneInString(s[i:])
		i += sz
		n++
	}
	return s[:i]
}

// truncMax returns an upper bound for s no longer than the prefix plus one
// maximal code point; nil when no short bound exists.
func truncMax(s string) any {
	p := truncMin(s)
	if p == s {
		return s
	}
	r, _ := utf8.DecodeRuneInString(s[len(p):])
	if r == utf8.MaxRune {
		return nil
	}
	return p + string(utf8.MaxRune)
}
