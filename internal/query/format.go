package query

import (
	"bytes"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
)

// Format is an output format of Print and Write.
type Format string

// The output formats.
const (
	// FormatTable is aligned text: a header, a rule, one line per row
	// (numbers right-aligned, NULL for null) and a row count.
	FormatTable Format = "table"
	// FormatCSV is RFC 4180 CSV with a header line; null is an empty field.
	FormatCSV Format = "csv"
	// FormatJSON is one JSON array per result, one object per row on its own
	// line, keys in column order; timestamps are RFC 3339 strings, structs
	// objects with their fields in order, decimals and big integers numbers.
	FormatJSON Format = "json"
)

// Formats lists the accepted format names.
var Formats = []Format{FormatTable, FormatCSV, FormatJSON}

// ParseFormat returns the Format named s.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("format %q: want table, csv or json", s)
}

// Write writes every row of rows to w in format f. It does not close rows.
func Write(w io.Writer, rows *sql.Rows, f Format) error {
	cts, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	cols := make([]column, len(cts))
	for i, ct := range cts {
		cols[i] = column{name: ct.Name(), typ: parseType(ct.DatabaseTypeName())}
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out rowWriter
	switch f {
	case FormatTable:
		out = &tableWriter{w: w, cols: cols}
	case FormatCSV:
		out = &csvWriter{w: csv.NewWriter(w), cols: cols}
	case FormatJSON:
		out = &jsonWriter{w: w, cols: cols}
	default:
		return fmt.Errorf("format %q: want table, csv or json", f)
	}
	if err := out.begin(); err != nil {
		return err
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if err := out.row(vals); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return out.end()
}

type column struct {
	name string
	typ  *dtype
}

type rowWriter interface {
	begin() error
	row(vals []any) error
	end() error
}

// tableWriter buffers the rows to size the columns.
type tableWriter struct {
	w     io.Writer
	cols  []column
	cells [][]string
}

func (t *tableWriter) begin() error { return nil }

func (t *tableWriter) row(vals []any) error {
	r := make([]string, len(vals))
	for i, v := range vals {
		if v == nil {
			r[i] = "NULL"
			continue
		}
		r[i] = text(v, t.cols[i].typ)
	}
	t.cells = append(t.cells, r)
	return nil
}

func (t *tableWriter) end() error {
	if len(t.cols) == 0 {
		_, err := io.WriteString(t.w, "OK\n")
		return err
	}
	width := make([]int, len(t.cols))
	for i, c := range t.cols {
		width[i] = displayWidth(c.name)
	}
	for _, r := range t.cells {
		for i, s := range r {
			width[i] = max(width[i], displayWidth(s))
		}
	}
	var b strings.Builder
	line := func(cells []string, header bool) {
		for i, s := range cells {
			if i > 0 {
				b.WriteString(" | ")
			}
			pad := strings.Repeat(" ", width[i]-displayWidth(s))
			if !header && t.cols[i].typ.numeric() && s != "NULL" {
				b.WriteString(pad + s)
			} else if i == len(cells)-1 {
				b.WriteString(s)
			} else {
				b.WriteString(s + pad)
			}
		}
		b.WriteString("\n")
	}
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.name
	}
	line(names, true)
	for i, w := range width {
		if i > 0 {
			b.WriteString("-+-")
		}
		b.WriteString(strings.Repeat("-", w))
	}
	b.WriteString("\n")
	for _, r := range t.cells {
		line(r, false)
	}
	if len(t.cells) == 1 {
		b.WriteString("(1 row)\n")
	} else {
		fmt.Fprintf(&b, "(%d rows)\n", len(t.cells))
	}
	_, err := io.WriteString(t.w, b.String())
	return err
}

// displayWidth counts runes, with East Asian wide and emoji runes as two
// columns, so most unicode lines up in a terminal.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case r >= 0x1100 && (r <= 0x115f || (r >= 0x2e80 && r <= 0xa4cf) || (r >= 0xac00 && r <= 0xd7a3) ||
			(r >= 0xf900 && r <= 0xfaff) || (r >= 0xfe30 && r <= 0xfe4f) || (r >= 0xff00 && r <= 0xff60) ||
			(r >= 0xffe0 && r <= 0xffe6) || (r >= 0x1f300 && r <= 0x1faff) || (r >= 0x20000 && r <= 0x3fffd)):
			n += 2
		case r == 0x200d || (r >= 0x300 && r <= 0x36f) || (r >= 0xfe00 && r <= 0xfe0f):
			// zero width joiner, combining marks, variation selectors
		default:
			n++
		}
	}
	return n
}

type csvWriter struct {
	w    *csv.Writer
	cols []column
	rec  []string
}

func (c *csvWriter) begin() error {
	if len(c.cols) == 0 {
		return nil
	}
	names := make([]string, len(c.cols))
	for i, col := range c.cols {
		names[i] = col.name
	}
	c.rec = make([]string, len(c.cols))
	return c.w.Write(names)
}

func (c *csvWriter) row(vals []any) error {
	for i, v := range vals {
		if v == nil {
			c.rec[i] = ""
			continue
		}
		c.rec[i] = text(v, c.cols[i].typ)
	}
	return c.w.Write(c.rec)
}

func (c *csvWriter) end() error {
	c.w.Flush()
	return c.w.Error()
}

type jsonWriter struct {
	w    io.Writer
	cols []column
	n    int
	keys [][]byte
	buf  bytes.Buffer
}

func (j *jsonWriter) begin() error {
	if len(j.cols) == 0 {
		return nil
	}
	j.keys = make([][]byte, len(j.cols))
	for i, c := range j.cols {
		k, err := json.Marshal(c.name)
		if err != nil {
			return err
		}
		j.keys[i] = k
	}
	_, err := io.WriteString(j.w, "[")
	return err
}

func (j *jsonWriter) row(vals []any) error {
	j.buf.Reset()
	if j.n > 0 {
		j.buf.WriteString(",")
	}
	j.buf.WriteString("\n{")
	for i, v := range vals {
		if i > 0 {
			j.buf.WriteString(",")
		}
		j.buf.Write(j.keys[i])
		j.buf.WriteString(":")
		b, err := json.Marshal(jsonValue(v, j.cols[i].typ))
		if err != nil {
			return fmt.Errorf("column %s: %w", j.cols[i].name, err)
		}
		j.buf.Write(b)
	}
	j.buf.WriteString("}")
	j.n++
	_, err := j.w.Write(j.buf.Bytes())
	return err
}

func (j *jsonWriter) end() error {
	if len(j.cols) == 0 {
		return nil
	}
	s := "\n]\n"
	if j.n == 0 {
		s = "]\n"
	}
	_, err := io.WriteString(j.w, s)
	return err
}

// text renders a non-null value as DuckDB prints it; nested values
// (STRUCT, LIST, MAP) as JSON.
func text(v any, t *dtype) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Time:
		return timeText(x, t, false)
	case []byte:
		if t.name == "UUID" && len(x) == 16 {
			return uuidText(x)
		}
		return blobText(x)
	case float64:
		return floatText(x, 64)
	case float32:
		return floatText(float64(x), 32)
	case duckdb.Interval:
		return intervalText(x)
	case duckdb.Decimal:
		return x.String()
	case *big.Int:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case map[string]any, []any, duckdb.Map, duckdb.Union:
		b, err := json.Marshal(jsonValue(v, t))
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
	return fmt.Sprint(v)
}

func timeText(x time.Time, t *dtype, forJSON bool) string {
	x = x.UTC()
	switch t.name {
	case "DATE":
		return x.Format("2006-01-02")
	case "TIME":
		return x.Format("15:04:05.999999")
	case "TIMETZ":
		return x.Format("15:04:05.999999Z07:00")
	case "TIMESTAMPTZ":
		if forJSON {
			return x.Format(time.RFC3339Nano)
		}
		return x.Format("2006-01-02 15:04:05.999999") + "+00"
	}
	if forJSON {
		return x.Format("2006-01-02T15:04:05.999999999")
	}
	return x.Format("2006-01-02 15:04:05.999999999")
}

func uuidText(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// blobText escapes non-printable bytes as \xNN, like DuckDB.
func blobText(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c >= 0x20 && c < 0x7f && c != '\\' {
			s.WriteByte(c)
		} else {
			fmt.Fprintf(&s, `\x%02X`, c)
		}
	}
	return s.String()
}

func floatText(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

func intervalText(iv duckdb.Interval) string {
	var parts []string
	plural := func(n int64, unit string) {
		if n == 0 {
			return
		}
		if n == 1 || n == -1 {
			parts = append(parts, fmt.Sprintf("%d %s", n, unit))
		} else {
			parts = append(parts, fmt.Sprintf("%d %ss", n, unit))
		}
	}
	plural(int64(iv.Months)/12, "year")
	plural(int64(iv.Months)%12, "month")
	plural(int64(iv.Days), "day")
	if iv.Micros != 0 || len(parts) == 0 {
		us := iv.Micros
		sign := ""
		if us < 0 {
			sign, us = "-", -us
		}
		h, m, s, frac := us/3_600_000_000, us/60_000_000%60, us/1_000_000%60, us%1_000_000
		t := fmt.Sprintf("%s%02d:%02d:%02d", sign, h, m, s)
		if frac != 0 {
			t += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}

// orderedObject is a JSON object that keeps its keys in order.
type orderedObject []keyValue

type keyValue struct {
	key string
	val any
}

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(kv.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(kv.val)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// jsonValue converts a scanned value to one encoding/json renders as
// intended.
func jsonValue(v any, t *dtype) any {
	switch x := v.(type) {
	case nil:
		return nil
	case time.Time:
		return timeText(x, t, true)
	case []byte:
		if t.name == "UUID" && len(x) == 16 {
			return uuidText(x)
		}
		if utf8.Valid(x) {
			return string(x)
		}
		return x // base64
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return floatText(x, 64)
		}
		return x
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return floatText(float64(x), 32)
		}
		return x
	case duckdb.Decimal:
		return json.Number(x.String())
	case *big.Int:
		return json.Number(x.String())
	case duckdb.Interval:
		return intervalText(x)
	case duckdb.Union:
		return jsonValue(x.Value, t.member(x.Tag))
	case map[string]any:
		obj := make(orderedObject, 0, len(x))
		seen := make(map[string]bool, len(x))
		for _, f := range t.fields {
			if fv, ok := x[f.name]; ok {
				obj = append(obj, keyValue{f.name, jsonValue(fv, f.typ)})
				seen[f.name] = true
			}
		}
		// Fields the type string did not name (it should name all).
		for _, k := range sortedKeys(x) {
			if !seen[k] {
				obj = append(obj, keyValue{k, jsonValue(x[k], unknownType)})
			}
		}
		return obj
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e, t.elemType())
		}
		return out
	case duckdb.Map:
		kt, vt := t.mapTypes()
		obj := make(orderedObject, 0, len(x))
		keys := make([]string, 0, len(x))
		byText := make(map[string]any, len(x))
		for k, v := range x {
			ks := fmt.Sprint(k)
			if k != nil {
				ks = text(k, kt)
			}
			keys = append(keys, ks)
			byText[ks] = v
		}
		sortStrings(keys)
		for _, k := range keys {
			obj = append(obj, keyValue{k, jsonValue(byText[k], vt)})
		}
		return obj
	}
	return v
}
