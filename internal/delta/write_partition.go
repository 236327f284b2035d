package delta

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
)

// partGroup is the rows of one partition of an Append, by index, and the
// partition values they share (serialized; "" is null).
type partGroup struct {
	values map[string]string
	// key is the grouping key of values (see groupChunk).
	key  string
	rows []int
}

// groupByPartition splits rows by their partition values, in order of
// first appearance.
func groupByPartition(schema *StructType, partCols []string, rows []map[string]any) ([]*partGroup, error) {
	groups, _, err := groupRows(schema, partCols, mapRows(rows), nil)
	return groups, err
}

// groupChunkRows is the fewest rows one goroutine of groupRows groups.
const groupChunkRows = 2048

// groupRows is groupByPartition that also returns, when non-nil, how many
// of partCols each row has as keys (null or not), which shredding needs.
// Large inputs are grouped in parallel chunks and merged in order.
func groupRows(schema *StructType, partCols []string, rows inRows, casts map[string]Cast) ([]*partGroup, []uint8, error) {
	fields := make([]*StructField, len(partCols))
	for i, pc := range partCols {
		if fields[i] = schema.Field(pc); fields[i] == nil {
			return nil, nil, fmt.Errorf("%w: partition column %q not in schema", ErrCorruptLog, pc)
		}
	}
	var present []uint8
	if rows.vals == nil && len(partCols) <= math.MaxUint8 && !hasDuplicates(partCols) {
		present = make([]uint8, rows.len())
	}
	nchunks := min(runtime.GOMAXPROCS(0), rows.len()/groupChunkRows)
	if nchunks <= 1 {
		groups, err := groupChunk(fields, partCols, rows, 0, rows.len(), present, casts)
		return groups, present, err
	}
	chunks := make([][]*partGroup, nchunks)
	errs := make([]error, nchunks)
	forEachGroup(nchunks, func(c int) {
		lo, hi := c*rows.len()/nchunks, (c+1)*rows.len()/nchunks
		chunks[c], errs[c] = groupChunk(fields, partCols, rows, lo, hi, present, casts)
	})
	// Chunks are in row order, so the first error is the lowest row's.
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	groups := chunks[0]
	byKey := make(map[string]*partGroup, len(groups))
	for _, g := range groups {
		byKey[g.key] = g
	}
	for _, cg := range chunks[1:] {
		for _, g := range cg {
			if m := byKey[g.key]; m != nil {
				m.rows = append(m.rows, g.rows...)
				continue
			}
			byKey[g.key] = g
			groups = append(groups, g)
		}
	}
	return groups, present, nil
}

func hasDuplicates(s []string) bool {
	for i, x := range s {
		if slices.Contains(s[i+1:], x) {
			return true
		}
	}
	return false
}

// groupChunk groups rows[lo:hi] in order of first appearance and records
// present[i] for each row (when present is non-nil).
func groupChunk(fields []*StructField, partCols []string, rows inRows, lo, hi int, present []uint8, casts map[string]Cast) ([]*partGroup, error) {
	// A row's key is each partition value, length-prefixed (uvarint of
	// length+1; 0 for null), so no two distinct value lists share a key.
	var groups []*partGroup
	var last *partGroup
	byKey := map[string]*partGroup{}
	var key, val []byte
	// Each value is key[starts[j]:ends[j]]; starts[j] is -1 for null.
	starts := make([]int, len(partCols))
	ends := make([]int, len(partCols))
	// colOf[j] is partition column j's column in rows given by column.
	var colOf []int
	if rows.vals != nil {
		colOf = make([]int, len(partCols))
		for j, pc := range partCols {
			colOf[j] = slices.Index(rows.cols, pc)
		}
	}
	for i := lo; i < hi; i++ {
		key = key[:0]
		n := 0
		for j, pc := range partCols {
			f := fields[j]
			var v any
			var ok bool
			if colOf == nil {
				v, ok = rows.maps[i][pc]
			} else if c := colOf[j]; c >= 0 {
				v = rows.vals[i][c]
			}
			if ok {
				n++
			}
			if val, ok = appendPartitionKey(val[:0], f.Type, v); !ok {
				c, err := castValue(f.Type, v, pc, casts[pc])
				if err != nil {
					return nil, withRow(err, i)
				}
				if c == nil && !f.Nullable {
					return nil, &SchemaError{Row: i, Path: pc, Reason: "null in NOT NULL partition column"}
				}
				s, err := serializePartitionValue(f.Type, c)
				if err != nil {
					return nil, &SchemaError{Row: i, Path: pc, Reason: err.Error()}
				}
				if c == nil {
					starts[j] = -1
					key = append(key, 0)
					continue
				}
				val = append(val[:0], s...)
			}
			key = binary.AppendUvarint(key, uint64(len(val))+1)
			starts[j] = len(key)
			key = append(key, val...)
			ends[j] = len(key)
		}
		if present != nil {
			present[i] = uint8(n)
		}
		// Rows of a flush mostly arrive in time order: most belong to the
		// previous row's group, found without hashing the key.
		g := last
		if g == nil || g.key != string(key) {
			g = byKey[string(key)]
		}
		if g == nil {
			g = &partGroup{key: string(key)}
			if len(partCols) > 0 {
				g.values = make(map[string]string, len(partCols))
				for j, pc := range partCols {
					if starts[j] < 0 {
						g.values[pc] = "" // null
						continue
					}
					g.values[pc] = g.key[starts[j]:ends[j]]
				}
			}
			byKey[g.key] = g
			groups = append(groups, g)
		}
		g.rows = append(g.rows, i)
		last = g
	}
	return groups, nil
}

// appendPartitionKey appends the serialized partition value of v for the
// common cases (strings, integers), as serializePartitionValue would after
// coercion; false leaves the others (and every error) to that path.
func appendPartitionKey(b []byte, t DataType, v any) ([]byte, bool) {
	switch t {
	case TypeString:
		if s, ok := v.(string); ok {
			return append(b, s...), true
		}
	case TypeLong, TypeInteger, TypeShort, TypeByte:
		x, ok, err := toInt64(v)
		lo, hi := intRange(t.(PrimitiveType))
		if ok && err == nil && x >= lo && x <= hi {
			return strconv.AppendInt(b, x, 10), true
		}
	}
	return b, false
}

// forEachGroup runs fn for 0..n-1 on at most GOMAXPROCS goroutines.
