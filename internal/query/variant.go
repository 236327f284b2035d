package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	"github.com/duckdb/duckdb-go/v2"

	"kpipe/internal/delta"
)

// variantJSONFunc renders a variant column's value and metadata binaries
// as JSON text (delta.VariantJSON); the view applies it to top-level
// variant columns. Variants nested in structs, arrays or maps keep their
// Parquet form, a STRUCT(value BLOB, metadata BLOB) (PROTOCOL.md's
// alternate exposure for engines without a variant type).
const variantJSONFunc = "kpipe_variant_json"

type variantJSON struct{}

func (variantJSON) Config() duckdb.ScalarFuncConfig {
	blob, _ := duckdb.NewTypeInfo(duckdb.TYPE_BLOB)
	varchar, _ := duckdb.NewTypeInfo(duckdb.TYPE_VARCHAR)
	return duckdb.ScalarFuncConfig{InputTypeInfos: []duckdb.TypeInfo{blob, blob}, ResultTypeInfo: varchar}
}

func (variantJSON) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{RowExecutor: func(v []driver.Value) (any, error) {
		value, _ := v[0].([]byte)
		meta, _ := v[1].([]byte)
		s, err := delta.VariantJSON(value, meta)
		if err != nil {
			return nil, fmt.Errorf("%w: variant: %w", delta.ErrCorruptLog, err)
		}
		return s, nil
	}}
}

func registerVariantJSON(ctx context.Context, conn *sql.Conn) error {
	return duckdb.RegisterScalarUDF(conn, variantJSONFunc, variantJSON{})
}
