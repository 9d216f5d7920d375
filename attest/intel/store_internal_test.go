package intel

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDiskStoreKey: a collateral key names a directory directly under the cache, or is refused.
func FuzzDiskStoreKey(f *testing.F) {
	f.Add("tdx/90c06f000000/platform")
	f.Add("sgx/00906ED50000/processor")
	f.Add("tdx/../../etc/platform")
	f.Fuzz(func(t *testing.T, key string) {
		d := DiskStore{Dir: "/cache"}
		dir, err := d.dir(key)
		if err != nil {
			return
		}
		if filepath.Dir(dir) != "/cache" || strings.ContainsAny(filepath.Base(dir), `/\`) || filepath.Base(dir) == ".." {
			t.Fatalf("key %q names %q", key, dir)
		}
	})
}
