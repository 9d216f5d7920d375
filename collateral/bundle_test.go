package collateral_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/collateral"
	"github.com/medicus-cloud/trust/policies"
)

func operator(t testing.TB) (ed25519.PrivateKey, policies.TrustKeys) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := policies.ParseTrustKeys(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return priv, keys
}

func sample(t testing.TB) *collateral.Bundle {
	t.Helper()
	b := &collateral.Bundle{Issued: time.Date(2023, 6, 20, 0, 0, 0, 0, time.UTC)}
	if err := b.AddIntelDir(filepath.Join("..", "attest", "intel", "testdata", "spr_e4")); err != nil {
		t.Fatal(err)
	}
	vcek, err := os.ReadFile(filepath.Join("..", "attest", "snp", "testdata", "milan-vcek.der"))
	if err != nil {
		t.Fatal(err)
	}
	b.Files["snp/vcek/Milan/0a0b-0000000000000000.der"] = vcek
	return b
}

func TestRoundTrip(t *testing.T) {
	key, keys := operator(t)
	b := sample(t)
	data, err := collateral.Sign(b, key)
	if err != nil {
		t.Fatal(err)
	}
	got, kid, err := collateral.Open(data, keys)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := keys[kid]; !ok || !got.Issued.Equal(b.Issued) || len(got.Files) != len(b.Files) {
		t.Fatalf("kid %q issued %v files %d", kid, got.Issued, len(got.Files))
	}
	for p, f := range b.Files {
		if !bytes.Equal(got.Files[p], f) {
			t.Errorf("%s differs", p)
		}
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := got.Extract(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "intel", "tdx", "50806f000000", "tcbinfo.json")); err != nil {
		t.Error(err)
	}
	// A second import replaces the first whole.
	delete(got.Files, "snp/vcek/Milan/0a0b-0000000000000000.der")
	if err := got.Extract(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snp")); !os.IsNotExist(err) {
		t.Errorf("files of the earlier import remain: %v", err)
	}
}

// TestTamper: every byte of a bundle is covered by the signature, and only operator keys count.
func TestTamper(t *testing.T) {
	key, keys := operator(t)
	data, err := collateral.Sign(sample(t), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{len(data) / 3, len(data) / 2, len(data) - 70, len(data) - 1} {
		bad := bytes.Clone(data)
		bad[i] ^= 0x01
		if _, _, err := collateral.Open(bad, keys); err == nil {
			t.Errorf("byte %d flipped: accepted", i)
		}
	}
	_, others := operator(t)
	if _, _, err := collateral.Open(data, others); !errors.Is(err, collateral.ErrBadSignature) {
		t.Errorf("another operator's key: %v", err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := collateral.Sign(sample(t), ek); err != nil {
		t.Errorf("P-256 operator key: %v", err)
	}
	if _, _, err := collateral.Open(data[:len(data)-10], keys); !errors.Is(err, collateral.ErrMalformed) {
		t.Errorf("truncated: %v", err)
	}
}

func TestPaths(t *testing.T) {
	key, _ := operator(t)
	for _, p := range []string{"../etc/passwd", "intel/tdx/50806f000000/../../x", "/abs", "intel/tdx/zz/tcbinfo.json",
		"intel/tdx/50806f000000/other.json", "snp/vcek/Milan/.hidden.der", "snp/crl/x.pem", "misc/file", "snp/vcek/Mi lan/a.der"} {
		b := &collateral.Bundle{Issued: time.Unix(1, 0), Files: map[string][]byte{p: {1}}}
		if _, err := collateral.Sign(b, key); !errors.Is(err, collateral.ErrMalformed) {
			t.Errorf("%q: %v", p, err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	key, keys := operator(f)
	data, err := collateral.Sign(sample(f), key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte{0xd2, 0x84})
	f.Fuzz(func(t *testing.T, b []byte) {
		bun, _, err := collateral.Open(b, keys)
		if err == nil && len(bun.Files) == 0 {
			t.Fatal("accepted an empty bundle")
		}
	})
}

var update = flag.Bool("update", false, "rewrite golden files")
