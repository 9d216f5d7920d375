package main_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/audit/auditor"
	sdktoken "github.com/medicus-cloud/trust/sdk/token"
)

// TestPublishedEndpoints checks what relying parties and auditors get from a running trustd
// over HTTP: a result token verifies offline with the published JWK Set, and the audit log
// verifies from trustd's read endpoint with the published key alone.
func TestPublishedEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real trustd")
	}
	dir := t.TempDir()
	td := startTrustdWith(t, buildTrustd(t, dir), filepath.Join(dir, "data"), "http_listen: 127.0.0.1:0\n")
	base := "http://" + td.httpAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, _, err := attestRaw(ctx, client(t, td.addr))
	if err != nil {
		t.Fatal(err)
	}

	// A relying party: fetch the key set, verify the token offline.
	jwks := get(t, base+"/.well-known/jwks.json")
	keys, err := sdktoken.ParseJWKS(jwks)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := keys.Verify(tok, sdktoken.Options{})
	if err != nil {
		t.Fatalf("token does not verify with the published key set: %v", err)
	}
	if claims.Policy != "hello" {
		t.Fatalf("claims %+v", claims)
	}

	// An auditor: the log over HTTP, checked against the verifier key published out of band.
	vkey, err := os.ReadFile(filepath.Join(dir, "data", "audit", "note.pub"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: base + "/audit/", Key: strings.TrimSpace(string(vkey))}})
	if err != nil {
		t.Fatalf("log over HTTP: %v", err)
	}
	if cp.Size < 1 {
		t.Fatalf("log size %d after an attestation", cp.Size)
	}
	// The key files behind the log are never served.
	for _, p := range []string{"/audit/note.key", "/audit/../note.key", "/audit/log/../note.key"} {
		if r, err := http.Get(base + p); err == nil {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if r.StatusCode == http.StatusOK && bytes.Contains(b, []byte("PRIVATE")) {
				t.Fatalf("%s served the note key", p)
			}
		}
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, r.Status)
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
