package sim

import (
	"strconv"
	"time"

	"kpipe/internal/claimx"
	"kpipe/internal/jsonx"
)

// jw appends JSON without reflection: the simulator renders every response
// and event with it, so serving and generating stay cheap.
type jw struct {
	b     []byte
	comma bool
}

func (w *jw) sep() {
	if w.comma {
		w.b = append(w.b, ',')
	}
	w.comma = true
}

func (w *jw) key(k string) *jw {
	w.sep()
	w.b = jsonx.AppendString(w.b, k)
	w.b = append(w.b, ':')
	w.comma = false
	return w
}

func (w *jw) open() *jw   { w.sep(); w.b = append(w.b, '{'); w.comma = false; return w }
func (w *jw) close() *jw  { w.b = append(w.b, '}'); w.comma = true; return w }
func (w *jw) openA() *jw  { w.sep(); w.b = append(w.b, '['); w.comma = false; return w }
func (w *jw) closeA() *jw { w.b = append(w.b, ']'); w.comma = true; return w }

func (w *jw) str(s string) *jw { w.sep(); w.b = jsonx.AppendString(w.b, s); return w }
func (w *jw) int(i int64) *jw  { w.sep(); w.b = strconv.AppendInt(w.b, i, 10); return w }
func (w *jw) null() *jw        { w.sep(); w.b = append(w.b, "null"...); return w }
func (w *jw) flt(f float64) *jw {
	w.sep()
	w.b = strconv.AppendFloat(w.b, f, 'f', -1, 64)
	return w
}
func (w *jw) bool(v bool) *jw { w.sep(); w.b = strconv.AppendBool(w.b, v); return w }

func (w *jw) time(t time.Time) *jw {
	if t.IsZero() {
		return w.null()
	}
	w.sep()
	w.b = append(w.b, '"')
	w.b = t.UTC().AppendFormat(w.b, claimx.TimeFormat)
	w.b = append(w.b, '"')
	return w
}

// optStr writes null for an empty string.
func (w *jw) optStr(s string) *jw {
	if s == "" {
		return w.null()
	}
	return w.str(s)
}

// Field helpers.
func (w *jw) fs(k, v string) *jw       { return w.key(k).str(v) }
func (w *jw) fi(k string, v int64) *jw { return w.key(k).int(v) }
func (w *jw) ft(k string, v time.Time) *jw {
	return w.key(k).time(v)
}
