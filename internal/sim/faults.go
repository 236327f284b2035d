package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Faults are the failures the simulator injects into API responses (never
// into /admin). Each request draws independently. The zero value injects
// nothing.
type Faults struct {
	// LatencyMin and LatencyMax delay each response by a uniform random
	// duration in [LatencyMin, LatencyMax] (LatencyMax zero: exactly
	// LatencyMin).
	LatencyMin, LatencyMax time.Duration
	// ErrorRates maps a status code (500, 502, 503, 404...) to the fraction of
	// requests answered with it.
	ErrorRates map[int]float64
	// RateLimit429 is the fraction answered 429 with a Retry-After header of
	// RetryAfter (default 1 s), in whole seconds.
	RateLimit429 float64
	RetryAfter   time.Duration
	// HangRate is the fraction of requests that never answer (until the
	// client gives up).
	HangRate float64
	// Outages are windows, relative to when the faults were set, during which
	// every request gets 503.
	Outages []Window
	// MalformedRate is the fraction of 200 responses whose body is cut short
	// (not valid JSON).
	MalformedRate float64
}

// Window is an outage from Start to End after the faults were set.
type Window struct {
	Start, End time.Duration
}

// faultsJSON is the /admin/faults representation: durations as strings such
// as "20ms".
type faultsJSON struct {
	LatencyMin    string             `json:"latency_min,omitempty"`
	LatencyMax    string             `json:"latency_max,omitempty"`
	ErrorRates    map[string]float64 `json:"error_rates,omitempty"`
	RateLimit429  float64            `json:"rate_limit_429,omitempty"`
	RetryAfter    string             `json:"retry_after,omitempty"`
	HangRate      float64            `json:"hang_rate,omitempty"`
	Outages       []windowJSON       `json:"outages,omitempty"`
	MalformedRate float64            `json:"malformed_rate,omitempty"`
}

type windowJSON struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// MarshalJSON implements json.Marshaler.
func (f Faults) MarshalJSON() ([]byte, error) {
	j := faultsJSON{LatencyMin: durString(f.LatencyMin), LatencyMax: durString(f.LatencyMax), RateLimit429: f.RateLimit429,
		RetryAfter: durString(f.RetryAfter), HangRate: f.HangRate, MalformedRate: f.MalformedRate}
	if len(f.ErrorRates) > 0 {
		j.ErrorRates = make(map[string]float64, len(f.ErrorRates))
		for c, r := range f.ErrorRates {
			j.ErrorRates[strconv.Itoa(c)] = r
		}
	}
	for _, w := range f.Outages {
		j.Outages = append(j.Outages, windowJSON{w.Start.String(), w.End.String()})
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler; unknown fields are errors.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return err
	}
	var out Faults
	var err error
	parse := func(name, s string) time.Duration {
		if s == "" || err != nil {
			return 0
		}
		v, e := time.ParseDuration(s)
		if e != nil {
			err = fmt.Errorf("%s: %w", name, e)
		}
		return v
	}
	out.LatencyMin = parse("latency_min", j.LatencyMin)
	out.LatencyMax = parse("latency_max", j.LatencyMax)
	out.RetryAfter = parse("retry_after", j.RetryAfter)
	out.RateLimit429, out.HangRate, out.MalformedRate = j.RateLimit429, j.HangRate, j.MalformedRate
	for k, v := range j.ErrorRates {
		c, e := strconv.Atoi(k)
		if e != nil {
			return fmt.Errorf("error_rates: %q is not a status code", k)
		}
		if out.ErrorRates == nil {
			out.ErrorRates = map[int]float64{}
		}
		out.ErrorRates[c] = v
	}
	for _, w := range j.Outages {
		out.Outages = append(out.Outages, Window{parse("outages.start", w.Start), parse("outages.end", w.End)})
	}
	if err != nil {
		return err
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*f = out
	return nil
}

// Validate checks rates and durations.
func (f *Faults) Validate() error {
	var probs []string
	rate := func(name string, v float64) {
		if v < 0 || v > 1 {
			probs = append(probs, fmt.Sprintf("%s: rate %v not in [0, 1]", name, v))
		}
	}
	rate("429", f.RateLimit429)
	rate("hang", f.HangRate)
	rate("malformed", f.MalformedRate)
	total := f.RateLimit429 + f.HangRate
	for c, v := range f.ErrorRates {
		if c < 400 || c > 599 {
			probs = append(probs, fmt.Sprintf("error rate for %d: not a 4xx or 5xx status", c))
		}
		rate(strconv.Itoa(c), v)
		total += v
	}
	if total > 1+1e-9 {
		probs = append(probs, fmt.Sprintf("error, 429 and hang rates add up to %v > 1", total))
	}
	if f.LatencyMin < 0 || f.LatencyMax < 0 || (f.LatencyMax != 0 && f.LatencyMax < f.LatencyMin) {
		probs = append(probs, "latency: want 0 <= min <= max")
	}
	for _, w := range f.Outages {
		if w.End <= w.Start || w.Start < 0 {
			probs = append(probs, fmt.Sprintf("outage %s-%s: want 0 <= start < end", w.Start, w.End))
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("faults: %s", strings.Join(probs, "; "))
	}
	return nil
}

// FaultsHelp documents ParseFaults' compact form.
const FaultsHelp = `comma-separated faults:
  latency=20ms           every response delayed 20ms
  latency=5ms-50ms       delay uniform in [5ms, 50ms]
  500=0.05               5% of requests answered 500 (any 4xx/5xx code)
  429=0.01               1% answered 429 with Retry-After
  retry_after=2s         the Retry-After of those 429s (default 1s)
  hang=0.001             0.1% never answered (the client times out)
  malformed=0.01         1% of 200 bodies cut short (invalid JSON)
  outage=30s-45s         every request 503 from 30s to 45s after start (repeatable)`

// ParseFaults reads the compact form of FaultsHelp, e.g.
// "latency=20ms,500=0.05,429=0.01,hang=0.001,malformed=0.01".
func ParseFaults(s string) (Faults, error) {
	var f Faults
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return Faults{}, fmt.Errorf("faults: %q: want key=value", part)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		var err error
		switch k {
		case "latency":
			lo, hi, isRange := strings.Cut(v, "-")
			if f.LatencyMin, err = time.ParseDuration(lo); err == nil && isRange {
				f.LatencyMax, err = time.ParseDuration(hi)
			}
		case "retry_after":
			f.RetryAfter, err = time.ParseDuration(v)
		case "outage":
			lo, hi, ok := strings.Cut(v, "-")
			if !ok {
				err = fmt.Errorf("want start-end")
				break
			}
			var w Window
			if w.Start, err = time.ParseDuration(lo); err == nil {
				w.End, err = time.ParseDuration(hi)
			}
			f.Outages = append(f.Outages, w)
		case "hang", "malformed", "429":
			var r float64
			r, err = strconv.ParseFloat(v, 64)
			switch k {
			case "hang":
				f.HangRate = r
			case "malformed":
				f.MalformedRate = r
			default:
				f.RateLimit429 = r
			}
		default:
			code, cerr := strconv.Atoi(k)
			if cerr != nil {
				return Faults{}, fmt.Errorf("faults: unknown key %q", k)
			}
			var r float64
			if r, err = strconv.ParseFloat(v, 64); err == nil {
				if f.ErrorRates == nil {
					f.ErrorRates = map[int]float64{}
				}
				f.ErrorRates[code] = r
			}
		}
		if err != nil {
			return Faults{}, fmt.Errorf("faults: %s: %w", part, err)
		}
	}
	return f, f.Validate()
}

// String writes the compact form.
func (f Faults) String() string {
	var parts []string
	if f.LatencyMin != 0 || f.LatencyMax != 0 {
		s := "latency=" + f.LatencyMin.String()
		if f.LatencyMax != 0 {
			s += "-" + f.LatencyMax.String()
		}
		parts = append(parts, s)
	}
	codes := make([]int, 0, len(f.ErrorRates))
	for c := range f.ErrorRates {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d=%v", c, f.ErrorRates[c]))
	}
	if f.RateLimit429 != 0 {
		parts = append(parts, fmt.Sprintf("429=%v", f.RateLimit429))
	}
	if f.RetryAfter != 0 {
		parts = append(parts, "retry_after="+f.RetryAfter.String())
	}
	if f.HangRate != 0 {
		parts = append(parts, fmt.Sprintf("hang=%v", f.HangRate))
	}
	if f.MalformedRate != 0 {
		parts = append(parts, fmt.Sprintf("malformed=%v", f.MalformedRate))
	}
	for _, w := range f.Outages {
		parts = append(parts, "outage="+w.Start.String()+"-"+w.End.String())
	}
	return strings.Join(parts, ",")
}

// activeFaults are faults as installed, with their start time and the
// error codes in a fixed order for drawing.
type activeFaults struct {
	Faults
	since time.Time
	codes []int
	none  bool
}

func newActiveFaults(f Faults, now time.Time) *activeFaults {
	a := &activeFaults{Faults: f, since: now}
	for c := range f.ErrorRates {
		a.codes = append(a.codes, c)
	}
	sort.Ints(a.codes)
	a.none = f.LatencyMin == 0 && f.LatencyMax == 0 && len(f.ErrorRates) == 0 && f.RateLimit429 == 0 &&
		f.HangRate == 0 && len(f.Outages) == 0 && f.MalformedRate == 0
	return a
}

// verdict is what a request gets.
type verdict struct {
	delay     time.Duration
	outage    bool
	hang      bool
	status    int // 0: serve normally
	malformed bool
}

func (a *activeFaults) draw(now time.Time) verdict {
	var v verdict
	if a.none {
		return v
	}
	el := now.Sub(a.since)
	for _, w := range a.Outages {
		if el >= w.Start && el < w.End {
			v.outage = true
			return v
		}
	}
	v.delay = a.LatencyMin
	if a.LatencyMax > a.LatencyMin {
		v.delay += time.Duration(rand.Int64N(int64(a.LatencyMax - a.LatencyMin + 1)))
	}
	x := rand.Float64()
	if x < a.HangRate {
		v.hang = true
		return v
	}
	x -= a.HangRate
	if x < a.RateLimit429 {
		v.status = 429
		return v
	}
	x -= a.RateLimit429
	for _, c := range a.codes {
		r := a.ErrorRates[c]
		if x < r {
			v.status = c
			return v
		}
		x -= r
	}
	v.malformed = a.MalformedRate > 0 && rand.Float64() < a.MalformedRate
	return v
}
