package daemon

import (
	"strings"
	"testing"
)

// TestLoadConfigOneDocument: a configuration file is one YAML document. Settings after a
// document separator would be ignored without a word (a client_crl_file, a token_audience), so
// such a file is refused like an unknown key.
func TestLoadConfigOneDocument(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"second document":        "listen: 127.0.0.1:9000\n---\ntls:\n  client_crl_file: /etc/trustd/admin-ca.crl\n",
		"empty first document":   "---\n---\nlisten: 127.0.0.1:9000\n",
		"second, empty document": "listen: 127.0.0.1:9000\n---\nbad: [\n",
	} {
		_, err := LoadConfig(write(t, dir, "multi.yaml", src))
		if err == nil || !strings.Contains(err.Error(), "document") {
			t.Errorf("%s: %v, want refused naming the extra document", name, err)
		}
	}
	if _, err := LoadConfig(write(t, dir, "one.yaml", "---\nlisten: 127.0.0.1:9000\n...\n")); err != nil {
		t.Errorf("one document with markers: %v", err)
	}
}
