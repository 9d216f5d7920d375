package postgres

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigOptions(t *testing.T) {
	skey, _ := newKey(t)
	dir := t.TempDir()
	dsn, key, loose := filepath.Join(dir, "dsn"), filepath.Join(dir, "key"), filepath.Join(dir, "loose")
	for p, b := range map[string]string{dsn: "postgres://trustd:pw@db/audit\n", key: skey + "\n", loose: skey} {
		if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := Config{DSNFile: dsn, KeyFile: key, Timeout: time.Second, MaxBatch: 7}.Options()
	if err != nil || o.DSN != "postgres://trustd:pw@db/audit" || o.Key != skey || o.Timeout != time.Second || o.MaxBatch != 7 {
		t.Fatalf("options %+v, %v", o, err)
	}
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{KeyFile: key}, "dsn_file is required"},
		{Config{DSNFile: dsn}, "key_file is required"},
		{Config{DSNFile: dsn, KeyFile: loose}, "readable by others"},
		{Config{DSNFile: loose, KeyFile: key}, "readable by others"},
		{Config{DSNFile: dsn, KeyFile: dsn}, "not a note signing key"},
		{Config{DSNFile: dsn, KeyFile: key, Timeout: -1}, "must not be negative"},
	} {
		_, err := tc.c.Options()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "pw@") {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
}
