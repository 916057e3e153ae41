package auth

import (
	"strings"
	"testing"
)

func TestGenerateAndParse(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		key, prefix, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(key, "fs_"+prefix+"_") || len(key) != 3+10+1+32 {
			t.Fatalf("key %q, prefix %q", key, prefix)
		}
		if p, ok := ParsePrefix(key); !ok || p != prefix {
			t.Fatalf("ParsePrefix(%q) = %q, %v", key, p, ok)
		}
		if seen[key] {
			t.Fatal("duplicate key")
		}
		seen[key] = true
		if len(Hash(key)) != 32 {
			t.Fatal("hash is not sha256")
		}
	}
	for _, bad := range []string{"", "fs_", "fs_short_x", "xx_AAAAAAAAAA_" + strings.Repeat("a", 32), "fs_AAAAAAAAAA_" + strings.Repeat("a", 31),
		"fs_AAAA_AAAAA_" + strings.Repeat("a", 32), "fs_AAAAAAAAAA_" + strings.Repeat("-", 32)} {
		if _, ok := ParsePrefix(bad); ok {
			t.Errorf("ParsePrefix accepted %q", bad)
		}
	}
}

func TestScopes(t *testing.T) {
	for _, c := range []struct {
		has   []string
		need  string
		allow bool
	}{
		{[]string{"read"}, "read", true},
		{[]string{"read"}, "write", false},
		{[]string{"write"}, "read", true},
		{[]string{"write"}, "admin", false},
		{[]string{"admin"}, "write", true},
		{[]string{"read", "admin"}, "admin", true},
		{[]string{"admin"}, "bogus", false},
	} {
		if got := (Key{Scopes: c.has}).Allows(c.need); got != c.allow {
			t.Errorf("%v allows %s = %v", c.has, c.need, got)
		}
	}
}
