package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"kpipe/internal/delta"
)

// fileColumn is the column read_parquet adds with each row's file path; the
// view joins it to the files' partition values. The name keeps clear of
// any table column.
const fileColumn = "__kpipe_file"

// checkReadable refuses tables kpipe cannot read (delta.CheckReadable:
// protocol versions and reader features, named) and tables whose files
// DuckDB would read wrongly: a column mapping mode it does not know.
// Column mapping is read by physical name (view_mapping.go); deletion
// vectors are honoured by the view (see createView).
func checkReadable(snap *delta.Snapshot) error {
	if err := delta.CheckReadable(snap); err != nil {
		return err
	}
	if m := snap.Metadata().Configuration["delta.columnMapping.mode"]; m != "" && m != "none" && mappingMode(snap.Metadata()) == "" {
		return fmt.Errorf("%w: column mapping mode %s", delta.ErrUnsupportedFeature, m)
	}
	return nil
}

// createView creates view name over the snapshot's active files:
//
//	SELECT CAST(d."col" AS <type>) AS "col", ..., p."year", ...
//	FROM read_parquet([...files...], union_by_name = true, ...) AS d
//	JOIN __kpipe_partitions_<name> AS p ON d.__kpipe_file = p.__kpipe_file
//
// union_by_name lines files of different schema versions up by column
// name; the CASTs give every column its Delta type, so a struct column
// whose older files lack a field reads that field as NULL, and a column no
// file has yet is a typed NULL. Partition values come from the log, never
// from paths (hive_partitioning is off). A table without files is an empty
// view with the same columns. When files have deletion vectors, the rows
// they delete are listed in a table the view anti-joins on (file,
// file_row_number): DuckDB never returns them.
func createView(ctx context.Context, conn *sql.Conn, name string, store delta.Storage, resolve func(addPath string) (string, error), snap *delta.Snapshot) error {
	md := snap.Metadata()
	schema := snap.Schema()
	if schema == nil {
		schema = &delta.StructType{}
	}
	cols := viewColumns(schema, md)
	if len(cols) == 0 {
		return fmt.Errorf("table has no columns")
	}
	parts := md.PartitionColumns
	files := snap.Files()
	slices.SortFunc(files, func(a, b delta.AddFile) int { return strings.Compare(a.Path, b.Path) })

	var b strings.Builder
	fmt.Fprintf(&b, "CREATE OR REPLACE VIEW %s AS\nSELECT", ident(name))
	if len(files) == 0 {
		for i, c := range cols {
			sep(&b, i)
			fmt.Fprintf(&b, "CAST(NULL AS %s) AS %s", c.sqlType, ident(c.name))
		}
		b.WriteString("\nWHERE false")
		_, err := conn.ExecContext(ctx, b.String())
		return err
	}

	paths := make([]string, len(files))
	for i, f := range files {
		p, err := resolve(f.Path)
		if err != nil {
			return err
		}
		paths[i] = p
	}
	var src strings.Builder
	src.WriteString("read_parquet([")
	for i, p := range paths {
		if i > 0 {
			src.WriteString(", ")
		}
		src.WriteString(literal(p))
	}
	deleted, err := deletedRows(ctx, store, files, paths)
	if err != nil {
		return err
	}
	rowNumber := ""
	if len(deleted) > 0 {
		rowNumber = ", file_row_number = true"
	}
	fmt.Fprintf(&src, "], union_by_name = true, hive_partitioning = false, filename = %s%s)", literal(fileColumn), rowNumber)

	present, err := parquetColumns(ctx, conn, src.String())
	if err != nil {
		return fmt.Errorf("reading data file schemas: %w", err)
	}
	mode := mappingMode(md)
	for i, c := range cols {
		sep(&b, i)
		f := schema.Field(c.name)
		switch {
		case slices.Contains(parts, c.name):
			fmt.Fprintf(&b, "p.%s AS %s", ident(c.name), ident(c.name))
		case mode == "" && present[strings.ToLower(c.name)] && c.variant:
			fmt.Fprintf(&b, "%s(d.%s.\"value\", d.%s.\"metadata\") AS %s", variantJSONFunc, ident(c.name), ident(c.name), ident(c.name))
		case mode != "" && f != nil && present[strings.ToLower(physicalName(f, mode))]:
			fmt.Fprintf(&b, "%s AS %s", mappedColumn(f, mode), ident(c.name))
		case mode == "" && present[strings.ToLower(c.name)]:
			fmt.Fprintf(&b, "CAST(d.%s AS %s) AS %s", ident(c.name), c.sqlType, ident(c.name))
		default:
			fmt.Fprintf(&b, "CAST(NULL AS %s) AS %s", c.sqlType, ident(c.name))
		}
	}
	fmt.Fprintf(&b, "\nFROM %s AS d", src.String())
	if len(deleted) > 0 {
		if err := createDeletedTable(ctx, conn, name, deleted); err != nil {
			return err
		}
		fmt.Fprintf(&b, "\nANTI JOIN %s AS x ON d.%s = x.%s AND d.file_row_number = x.row", ident(deletedTable(name)), ident(fileColumn), ident(fileColumn))
	}
	if len(parts) > 0 {
		if err := createPartitionTable(ctx, conn, name, schema, mode, parts, files, paths); err != nil {
			return err
		}
		fmt.Fprintf(&b, "\nJOIN %s AS p ON d.%s = p.%s", ident(partitionTable(name)), ident(fileColumn), ident(fileColumn))
	}
	_, err = conn.ExecContext(ctx, b.String())
	return err
}

// deletedTable names the table of the rows deletion vectors remove.
func deletedTable(view string) string { return "__kpipe_deleted_" + view }

// fileDeletes are the rows a file's deletion vector removes.
type fileDeletes struct {
	path string
	rows []uint64
}

// deletedRows reads the deletion vectors of files (paths[i] is how the
// view names files[i]).
func deletedRows(ctx context.Context, store delta.Storage, files []delta.AddFile, paths []string) ([]fileDeletes, error) {
	var out []fileDeletes
	for i, f := range files {
		if len(f.DeletionVector) == 0 {
			continue
		}
		rows, err := delta.DeletedRows(ctx, store, f)
		if err != nil {
			return nil, err
		}
		if len(rows) > 0 {
			out = append(out, fileDeletes{path: paths[i], rows: rows})
		}
	}
	return out, nil
}

// createDeletedTable stores the deleted (file, row) pairs through DuckDB's
// appender.
func createDeletedTable(ctx context.Context, conn *sql.Conn, view string, deleted []fileDeletes) error {
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TABLE %s (%s VARCHAR, row BIGINT)", ident(deletedTable(view)), ident(fileColumn))); err != nil {
		return err
	}
	return conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("duckdb connection is a %T", dc)
		}
		app, err := duckdb.NewAppenderFromConn(c, "", deletedTable(view))
		if err != nil {
			return err
		}
		for _, d := range deleted {
			for _, r := range d.rows {
				if err := app.AppendRow(d.path, int64(r)); err != nil {
					app.Close()
					return err
				}
			}
		}
		return app.Close()
	})
}

// partitionTable names the table of the view's files and their partition
// values.
func partitionTable(view string) string { return "__kpipe_partitions_" + view }

// createPartitionTable stores each file's partition values, typed, in a
// table the view joins on the file path. A table rather than a VALUES list
// inside the view: the view is bound again by every statement, and binding
// thousands of literal rows each time costs more than the scan.
func createPartitionTable(ctx context.Context, conn *sql.Conn, view string, schema *delta.StructType, mode string, parts []string, files []delta.AddFile, paths []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE OR REPLACE TABLE %s (%s VARCHAR", ident(partitionTable(view)), ident(fileColumn))
	for _, pc := range parts {
		fl := schema.Field(pc)
		if fl == nil {
			return fmt.Errorf("%w: partition column %q not in schema", delta.ErrCorruptLog, pc)
		}
		fmt.Fprintf(&b, ", %s %s", ident(pc), duckType(fl.Type))
	}
	b.WriteString(")")
	if _, err := conn.ExecContext(ctx, b.String()); err != nil {
		return err
	}
	b.Reset()
	fmt.Fprintf(&b, "INSERT INTO %s VALUES", ident(partitionTable(view)))
	for i, f := range files {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n(" + literal(paths[i]))
		for _, pc := range parts {
			fl := schema.Field(pc)
			v, ok := f.PartitionValues[physicalName(fl, mode)]
			if !ok {
				v = f.PartitionValues[pc]
			}
			b.WriteString(", " + partitionLiteral(fl.Type, v))
		}
		b.WriteString(")")
	}
	_, err := conn.ExecContext(ctx, b.String())
	return err
}

func sep(b *strings.Builder, i int) {
	if i > 0 {
		b.WriteString(",")
	}
	b.WriteString("\n  ")
}

type viewColumn struct {
	name    string
	sqlType string
	variant bool // a top-level variant column, read as JSON text
}

// viewColumns lists the view's columns: the Delta schema's, in its order,
// plus the columns the table declares as inferred structs
// (kpipe.inferredColumns) that no write has given a value yet — they read as
// NULL (typed VARCHAR: DuckDB has no empty STRUCT) at their declared
// position, so queries such as "claimx_task_full IS NULL" work on a table
// whose lookups have always failed.
func viewColumns(schema *delta.StructType, md delta.Metadata) []viewColumn {
	var cols []viewColumn
	inferred := splitList(md.Configuration["kpipe.inferredColumns"])
	order := splitList(md.Configuration["kpipe.columnOrder"])
	placed := map[string]bool{}
	add := func(f *delta.StructField) {
		vc := viewColumn{name: f.Name, sqlType: duckType(f.Type), variant: f.Type == delta.TypeVariant}
		if vc.variant {
			vc.sqlType = "VARCHAR"
		}
		cols = append(cols, vc)
		placed[strings.ToLower(f.Name)] = true
	}
	// Walk the schema, inserting each missing inferred column after the
	// declared column that precedes it.
	missing := map[string]bool{}
	for _, n := range inferred {
		if schema.Field(n) == nil {
			missing[n] = true
		}
	}
	emitMissingBefore := func(upTo int) {
		for i := 0; i < upTo && i < len(order); i++ {
			n := order[i]
			if missing[n] && !placed[strings.ToLower(n)] {
				cols = append(cols, viewColumn{name: n, sqlType: "VARCHAR"})
				placed[strings.ToLower(n)] = true
			}
		}
	}
	for _, f := range schema.Fields {
		if pos := slices.Index(order, f.Name); pos >= 0 {
			emitMissingBefore(pos)
		}
		add(f)
	}
	emitMissingBefore(len(order))
	return cols
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// parquetColumns returns the lower-cased top-level column names of the
// union of the files read by src.
func parquetColumns(ctx context.Context, conn *sql.Conn, src string) (map[string]bool, error) {
	rows, err := conn.QueryContext(ctx, "SELECT column_name FROM (DESCRIBE SELECT * FROM "+src+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[strings.ToLower(n)] = true
	}
	return out, rows.Err()
}

// localPath resolves an add path to a file DuckDB can open.
func localPath(store delta.Storage, p string) (string, error) {
	k := delta.StorageKey(p)
	if strings.Contains(k, "://") {
		return "", fmt.Errorf("%w: data file %s is not on the local file system", delta.ErrUnsupportedFeature, p)
	}
	if filepath.IsAbs(k) {
		return k, nil
	}
	if _, ok := store.(*delta.LocalStorage); !ok {
		return "", fmt.Errorf("%w: querying %s storage", delta.ErrUnsupportedFeature, store.Location())
	}
	return filepath.Join(store.Location(), filepath.FromSlash(k)), nil
}

// partitionLiteral is the SQL value of a serialized partition value: the
// empty string is null (Delta's rule for every partition type).
func partitionLiteral(t delta.DataType, v string) string {
	typ := duckType(t)
	if v == "" {
		return "CAST(NULL AS " + typ + ")"
	}
	return "CAST(" + literal(v) + " AS " + typ + ")"
}

// duckType is the DuckDB type of a Delta type.
func duckType(t delta.DataType) string {
	switch t := t.(type) {
	case delta.PrimitiveType:
		switch t {
		case delta.TypeString:
			return "VARCHAR"
		case delta.TypeLong:
			return "BIGINT"
		case delta.TypeInteger:
			return "INTEGER"
		case delta.TypeShort:
			return "SMALLINT"
		case delta.TypeByte:
			return "TINYINT"
		case delta.TypeFloat:
			return "FLOAT"
		case delta.TypeDouble:
			return "DOUBLE"
		case delta.TypeBoolean:
			return "BOOLEAN"
		case delta.TypeBinary:
			return "BLOB"
		case delta.TypeDate:
			return "DATE"
		case delta.TypeTimestamp:
			// An instant (Parquet isAdjustedToUTC): WITH TIME ZONE, shown in
			// the session's UTC.
			return "TIMESTAMP WITH TIME ZONE"
		case delta.TypeTimestampNTZ:
			return "TIMESTAMP"
		case delta.TypeVariant:
			return `STRUCT("value" BLOB, "metadata" BLOB)`
		}
	case *delta.DecimalType:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case *delta.StructType:
		if len(t.Fields) == 0 {
			return "VARCHAR"
		}
		var b strings.Builder
		b.WriteString("STRUCT(")
		for i, f := range t.Fields {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(ident(f.Name) + " " + duckType(f.Type))
		}
		b.WriteString(")")
		return b.String()
	case *delta.ArrayType:
		return duckType(t.ElementType) + "[]"
	case *delta.MapType:
		return "MAP(" + duckType(t.KeyType) + ", " + duckType(t.ValueType) + ")"
	}
	// Unknown types: let DuckDB keep what the file has.
	return "VARCHAR"
}

// ident quotes an SQL identifier.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// literal quotes an SQL string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
