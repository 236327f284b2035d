package delta

import (
	"fmt"
	"math/big"
	"strings"
)

// Decimal is a value of a decimal column: Unscaled × 10^-Scale.
type Decimal struct {
	Unscaled *big.Int
	Scale    int
}

// String formats the decimal with exactly Scale fraction digits.
func (d Decimal) String() string {
	if d.Unscaled == nil {
		return "<nil>"
	}
	s := new(big.Int).Abs(d.Unscaled).String()
	neg := d.Unscaled.Sign() < 0
	if d.Scale > 0 {
		if len(s) <= d.Scale {
			s = strings.Repeat("0", d.Scale-len(s)+1) + s
		}
		s = s[:len(s)-d.Scale] + "." + s[len(s)-d.Scale:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ParseDecimal parses a decimal literal ("-12.340", "5") at the given scale,
// rejecting values that need more fraction digits or more than precision
// digits in total.
func ParseDecimal(s string, precision, scale int) (Decimal, error) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return Decimal{}, fmt.Errorf("invalid decimal %q", s)
	}
	return decimalFromRat(r, precision, scale)
}

func decimalFromRat(r *big.Rat, precision, scale int) (Decimal, error) {
	m := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if !m.IsInt() {
		return Decimal{}, fmt.Errorf("%s has more than %d fraction digits", r.FloatString(scale+4), scale)
	}
	u := new(big.Int).Set(m.Num())
	if precision > 0 && len(new(big.Int).Abs(u).String()) > precision && u.Sign() != 0 {
		return Decimal{}, fmt.Errorf("%s does not fit decimal(%d,%d)", r.FloatString(scale), precision, scale)
	}
	return Decimal{Unscaled: u, Scale: scale}, nil
}

// decimalBytes returns the big-endian two's complement of u in n bytes.
func decimalBytes(u *big.Int, n int) []byte {
	out := make([]byte, n)
	if u.Sign() >= 0 {
		u.FillBytes(out)
		return out
	}
	// two's complement: 2^(8n) + u
	t := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
	t.Add(t, u)
	t.FillBytes(out)
	return out
}

// decimalFromBytes decodes a big-endian two's complement integer.
func decimalFromBytes(b []byte) *big.Int {
	u := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		u.Sub(u, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return u
}

// decimalByteLen is the fixed length Spark uses for a decimal of precision p.
func decimalByteLen(p int) int {
	n := 1
	for {
		// max unscaled with n bytes: 2^(8n-1)-1 must be >= 10^p - 1
		lim := new(big.Int).Lsh(big.NewInt(1), uint(8*n-1))
		if lim.Cmp(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(p)), nil)) >= 0 {
			return n
		}
		n++
	}
}
