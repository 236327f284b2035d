package delta

import (
	"encoding/json"
	"math"
	"time"
)

// statsJSONReference is the original map-and-encoding/json implementation
// of fileEncoder.statsJSON, kept to check the hand-written one.
func statsJSONReference(e *fileEncoder) string {
	minV, maxV, nulls := map[string]any{}, map[string]any{}, map[string]any{}
	put := func(m map[string]any, path []string, v any) {
		for _, p := range path[:len(path)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[path[len(path)-1]] = v
	}
	for i, sc := range e.plan.stats {
		s := &e.stats[i]
		put(nulls, sc.path, s.nulls)
		if !s.has || s.bad || sc.typ == nil {
			continue
		}
		var lo, hi any
		switch sc.typ {
		case TypeString:
			lo, hi = truncMin(s.minS), truncMax(s.maxS)
			if hi == nil {
				put(minV, sc.path, lo)
				continue
			}
		case TypeFloat, TypeDouble:
			if math.IsInf(s.minF, 0) || math.IsInf(s.maxF, 0) {
				continue
			}
			lo, hi = s.minF, s.maxF
		case TypeTimestamp, TypeTimestampNTZ:
			lo, hi = formatStatTime(s.minI, sc.typ), formatStatTime(s.maxI, sc.typ)
		case TypeDate:
			lo = time.Unix(s.minI*86400, 0).UTC().Format("2006-01-02")
			hi = time.Unix(s.maxI*86400, 0).UTC().Format("2006-01-02")
		default:
			lo, hi = s.minI, s.maxI
		}
		put(minV, sc.path, lo)
		put(maxV, sc.path, hi)
	}
	out := map[string]any{"numRecords": e.n, "minValues": minV, "maxValues": maxV, "nullCount": nulls}
	b, _ := json.Marshal(out)
	return string(b)
}
