package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeKey(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMasterKey(t *testing.T) {
	dir := t.TempDir()
	hexKey := strings.Repeat("ab", 32)
	if k, _, err := MasterKey(writeKey(t, dir, "hex", hexKey+"\n"), "", dir, false); err != nil || k.Len() != 32 {
		t.Fatalf("hex file: %v", err)
	}
	if k, _, err := MasterKey(writeKey(t, dir, "raw", strings.Repeat("k", 32)), "", dir, false); err != nil || k.Len() != 32 {
		t.Fatalf("raw file: %v", err)
	}
	if k, from, err := MasterKey("", hexKey, dir, false); err != nil || k.Len() != 32 || !strings.Contains(from, "MEDICUS_MASTER_KEY") {
		t.Fatalf("env: %v %s", err, from)
	}
	if _, _, err := MasterKey(writeKey(t, dir, "short", "abcd"), "", dir, false); err == nil {
		t.Fatal("short key accepted")
	}
	if _, _, err := MasterKey("", "", dir, false); err == nil {
		t.Fatal("no key accepted outside dev mode")
	}
	loose := writeKey(t, dir, "loose", hexKey)
	os.Chmod(loose, 0o644)
	if _, _, err := MasterKey(loose, "", dir, false); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("world-readable master key: %v", err)
	}
	k1, from, err := MasterKey("", "", dir, true)
	if err != nil || !strings.Contains(from, "INSECURE") {
		t.Fatalf("dev: %v %s", err, from)
	}
	k2, _, _ := MasterKey("", "", dir, true)
	if !k1.Equal(k2) {
		t.Fatal("dev key not reused")
	}
}
