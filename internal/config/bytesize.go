package config

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes. It parses and prints with binary (KiB, MiB,
// GiB) or decimal (kB, MB, GB) units, or none: "8MiB", "500kB", "1048576".
type ByteSize int64

var byteUnits = []struct {
	suffix string
	factor int64
}{
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"KB", 1e3}, {"B", 1},
}

// ParseByteSize parses a whole number of bytes with an optional unit.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	factor := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, factor = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("parse byte size %q: want a whole number of bytes with an optional unit (KiB, MiB, GiB, kB, MB, GB)", s)
	}
	if n > (1<<62)/factor {
		return 0, fmt.Errorf("parse byte size %q: too large", s)
	}
	return ByteSize(n * factor), nil
}

// String prints the size with the largest binary unit that divides it.
func (b ByteSize) String() string {
	for _, u := range byteUnits[:3] {
		if b != 0 && int64(b)%u.factor == 0 {
			return strconv.FormatInt(int64(b)/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}
