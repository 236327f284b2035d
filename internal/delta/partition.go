package delta

import (
	"fmt"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// hiveDefaultPartition is the directory value of a null partition value.
const hiveDefaultPartition = "__HIVE_DEFAULT_PARTITION__"

// escapePartitionValue escapes a partition value for a directory name as
// Hive and Spark do.
func escapePartitionValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte("\"#%'*/:=?\\{[]^", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// partitionDir returns the Hive-style directory for the partition values
// (in partition column order), as a storage key prefix with trailing '/',
// and the same as a URL-encoded log path prefix.
func partitionDir(cols []string, values map[string]string) (key, logPath string) {
	var k, p strings.Builder
	for _, c := range cols {
		v := values[c]
		seg := escapePartitionValue(c) + "="
		if v == "" {
			seg += hiveDefaultPartition
		} else {
			seg += escapePartitionValue(v)
		}
		k.WriteString(seg + "/")
		p.WriteString(url.PathEscape(seg) + "/")
	}
	return k.String(), p.String()
}

// serializePartitionValue formats a coerced value for partitionValues; nil
// is the empty string (null).
func serializePartitionValue(t DataType, v any) (string, error) {
	if v == nil {
		return "", nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int8:
		return strconv.FormatInt(int64(x), 10), nil
	case int16:
		return strconv.FormatInt(int64(x), 10), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case Decimal:
		return x.String(), nil
	case []byte:
		return string(x), nil
	case time.Time:
		switch t {
		case TypeDate:
			return x.UTC().Format("2006-01-02"), nil
		case TypeTimestampNTZ:
			return x.UTC().Format("2006-01-02 15:04:05.999999"), nil
		}
		return x.UTC().Format("2006-01-02T15:04:05.000000Z"), nil
	}
	return "", fmt.Errorf("cannot use %T as a partition value", v)
}

// parsePartitionValue parses a serialized partition value as type t.
func parsePartitionValue(t DataType, s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	switch t := t.(type) {
	case *DecimalType:
		d, err := ParseDecimal(s, 0, t.Scale)
		if err != nil {
			r, ok := new(big.Rat).SetString(s)
			if !ok {
				return nil, err
			}
			return decimalFromRat(r, 0, t.Scale)
		}
		return d, nil
	case PrimitiveType:
		switch t {
		case TypeString:
			return s, nil
		case TypeBinary:
			return []byte(s), nil
		case TypeBoolean:
			return strconv.ParseBool(s)
		case TypeByte:
			n, err := strconv.ParseInt(s, 10, 8)
			return int8(n), err
		case TypeShort:
			n, err := strconv.ParseInt(s, 10, 16)
			return int16(n), err
		case TypeInteger:
			n, err := strconv.ParseInt(s, 10, 32)
			return int32(n), err
		case TypeLong:
			return strconv.ParseInt(s, 10, 64)
		case TypeFloat:
			f, err := strconv.ParseFloat(s, 32)
			return float32(f), err
		case TypeDouble:
			return strconv.ParseFloat(s, 64)
		case TypeDate:
			return time.Parse("2006-01-02", s)
		case TypeTimestamp, TypeTimestampNTZ:
			for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"} {
				if ts, err := time.Parse(layout, s); err == nil {
					return ts.UTC(), nil
				}
			}
			return nil, fmt.Errorf("invalid timestamp partition value %q", s)
		}
	}
	return nil, fmt.Errorf("partition column of type %s is not supported", t)
}

func itoa(n int) string { return strconv.Itoa(n) }
