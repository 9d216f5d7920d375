package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/collateral"
)

// TestCollateralBundleImport: trustd imports a signed bundle, its offline TDX section appraises
// with the bundle's collateral, and an older bundle is refused at the next start.
func TestCollateralBundleImport(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "operators.pem")
	if err := os.WriteFile(keysFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(issued time.Time) string {
		b := &collateral.Bundle{Issued: issued}
		if err := b.AddIntelDir(filepath.Join("..", "..", "attest", "intel", "testdata", "spr_e4")); err != nil {
			t.Fatal(err)
		}
		data, err := collateral.Sign(b, key)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, issued.Format("20060102")+".cose")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t1 := time.Date(2023, 6, 20, 0, 0, 0, 0, time.UTC)
	dataDir := filepath.Join(dir, "data")
	start := func(file string) (*Daemon, error) {
		d := &Daemon{cfg: &Config{DataDir: dataDir, CollateralBundle: CollateralBundleConfig{File: file, KeysFile: keysFile}},
			log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		return d, d.openCollateral(context.Background(), Env{})
	}
	d, err := start(write(t1))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tdx.Config{}
	cfg.Offline = true
	v, err := cfg.NewVerifier(attest.Deps{BundleDir: d.coll.bundleDir})
	if err != nil {
		t.Fatal(err)
	}
	q, err := os.ReadFile(filepath.Join("..", "..", "attest", "tdx", "testdata", "tdx_prod_quote_SPR_E4.dat"))
	if err != nil {
		t.Fatal(err)
	}
	// Intel's sample TCB info has no level for this quote's TDX SVNs: appraised, and refused.
	_, err = v.Verify(context.Background(), &attest.Evidence{TEE: attest.TDX, Report: q}, attest.Options{Now: t1})
	var ae *attest.Error
	if !errors.As(err, &ae) || ae.Field != "tcb_status" {
		t.Fatalf("with the bundle: %v, want the TCB appraised (tcb_status)", err)
	}
	if ages := d.coll.bundle.CollateralAges(); len(ages) != 1 || !ages[0].FetchedAt.Equal(t1) {
		t.Errorf("ages %+v", ages)
	}
	// The same bundle again, and a newer one, start; an older one never replaces the newer one
	// imported before: trustd starts with that one (and warns).
	if _, err := start(write(t1)); err != nil {
		t.Errorf("same bundle: %v", err)
	}
	if _, err := start(write(t1.Add(24 * time.Hour))); err != nil {
		t.Errorf("newer bundle: %v", err)
	}
	d, err = start(write(t1.Add(time.Hour)))
	if err != nil {
		t.Fatalf("older bundle: %v", err)
	}
	if ages := d.coll.bundle.CollateralAges(); len(ages) != 1 || !ages[0].FetchedAt.Equal(t1.Add(24*time.Hour)) {
		t.Errorf("older bundle: in use %+v, want the newer one kept", ages)
	}
	// Without the newer bundle's signed file (an import by an older trustd) the rule is as
	// before: an older bundle does not start.
	os.Remove(filepath.Join(dataDir, "collateral", "bundle.cose"))
	if _, err := start(write(t1.Add(2 * time.Hour))); !errors.Is(err, collateral.ErrOlder) {
		t.Errorf("older bundle without the newer one's file: %v", err)
	}
}

// TestTCBUpdaters: the Intel verifiers' TCB recomputation is registered once for the service;
// without one there is nothing to register.
func TestTCBUpdaters(t *testing.T) {
	if u := tcbUpdaters(nil); u != nil {
		t.Fatalf("no verifiers: %v", u)
	}
	v, err := tdx.New(tdx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := tcbUpdaters([]attest.Verifier{v})
	if u == nil {
		t.Fatal("TDX verifier not registered")
	}
	// Without collateral of trustd's own, claims keep their status.
	c := &attest.Claims{TEE: attest.TDX, TCBStatus: "UpToDate", Platform: map[string]string{"fmspc": "90c06f000000", "pck_ca": "platform"}}
	if err := u.Update(c, time.Now()); err != nil || c.TCBStatus != "UpToDate" {
		t.Fatalf("update: %v %s", err, c.TCBStatus)
	}
}
