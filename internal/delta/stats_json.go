package delta

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"kpipe/internal/jsonx"
)

// statNode is a node of a plan's stats paths: a leaf names a stats column,
// an inner node a struct. Children are sorted by name, the order in which
// encoding/json writes map keys.
type statNode struct {
	name     string
	stat     int // leaf: index into writePlan.stats; inner: -1
	children []*statNode
}

func newStatTree(stats []statCol) *statNode {
	root := &statNode{stat: -1}
	for i, sc := range stats {
		n := root
		for _, p := range sc.path[:len(sc.path)-1] {
			var c *statNode
			for _, x := range n.children {
				if x.name == p && x.stat < 0 {
					c = x
					break
				}
			}
			if c == nil {
				c = &statNode{name: p, stat: -1}
				n.children = append(n.children, c)
			}
			n = c
		}
		n.children = append(n.children, &statNode{name: sc.path[len(sc.path)-1], stat: i})
	}
	var sortTree func(n *statNode)
	sortTree = func(n *statNode) {
		slices.SortStableFunc(n.children, func(a, b *statNode) int { return strings.Compare(a.name, b.name) })
		for _, c := range n.children {
			sortTree(c)
		}
	}
	sortTree(root)
	return root
}

type statPart uint8

const (
	statMin statPart = iota
	statMax
	statNulls
)

// statsJSON returns the file's statistics JSON: numRecords, minValues,
// maxValues and nullCount, byte for byte what encoding/json makes of the
// same values in maps.
func (e *fileEncoder) statsJSON() string {
	b := make([]byte, 0, 256+64*len(e.plan.stats))
	b = append(b, `{"maxValues":`...)
	b = e.appendStatObject(b, e.plan.statTree, statMax)
	b = append(b, `,"minValues":`...)
	b = e.appendStatObject(b, e.plan.statTree, statMin)
	b = append(b, `,"nullCount":`...)
	b = e.appendStatObject(b, e.plan.statTree, statNulls)
	b = append(b, `,"numRecords":`...)
	b = strconv.AppendInt(b, e.n, 10)
	b = append(b, '}')
	return string(b)
}

// appendStatObject appends n's children that have a value for part as a
// JSON object ({} when none has).
func (e *fileEncoder) appendStatObject(b []byte, n *statNode, part statPart) []byte {
	b = append(b, '{')
	first := true
	for _, c := range n.children {
		mark := len(b)
		if !first {
			b = append(b, ',')
		}
		b = jsonx.AppendStringHTML(b, c.name)
		b = append(b, ':')
		if c.stat < 0 {
			inner := len(b)
			b = e.appendStatObject(b, c, part)
			if len(b) == inner+2 { // an empty object: the map version never creates it
				b = b[:mark]
				continue
			}
		} else {
			var ok bool
			if b, ok = e.appendStatValue(b, c.stat, part); !ok {
				b = b[:mark]
				continue
			}
		}
		first = false
	}
	return append(b, '}')
}

// appendStatValue appends one column's value for part; false when the
// column has none.
func (e *fileEncoder) appendStatValue(b []byte, i int, part statPart) ([]byte, bool) {
	s, typ := &e.stats[i], e.plan.stats[i].typ
	if part == statNulls {
		return strconv.AppendInt(b, s.nulls, 10), true
	}
	if !s.has || s.bad || typ == nil {
		return b, false
	}
	switch typ {
	case TypeString:
		if part == statMin {
			return jsonx.AppendStringHTML(b, truncMin(s.minS)), true
		}
		hi, ok := truncMax(s.maxS).(string)
		if !ok {
			return b, false
		}
		return jsonx.AppendStringHTML(b, hi), true
	case TypeFloat, TypeDouble:
		if math.IsInf(s.minF, 0) || math.IsInf(s.maxF, 0) {
			return b, false
		}
		f := s.minF
		if part == statMax {
			f = s.maxF
		}
		return appendJSONFloat(b, f), true
	}
	x := s.minI
	if part == statMax {
		x = s.maxI
	}
	switch typ {
	case TypeTimestamp, TypeTimestampNTZ:
		return jsonx.AppendStringHTML(b, formatStatTime(x, typ)), true
	case TypeDate:
		return jsonx.AppendStringHTML(b, time.Unix(x*86400, 0).UTC().Format("2006-01-02")), true
	}
	return strconv.AppendInt(b, x, 10), true
}

// appendJSONFloat formats f as encoding/json does.
func appendJSONFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
