package tdx_test

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/google/go-tdx-guest/verify"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/intel/inteltest"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/internal/benchratio"
)

// BenchmarkRatioTDX measures a warm verification of a v4 quote with collateral (PCK chain and
// collateral verified once and cached; TCB status evaluated every time) against the floor of
// one raw ECDSA P-256 verification. A verification must do two: the quote signature by the
// attestation key and the QE report signature by the PCK.
func BenchmarkRatioTDX(b *testing.B) {
	f := fx(b)
	q := f.Quote(f.DefaultSpec())
	coll, err := f.Collateral(nil, nil, false)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := coll.WriteDir(dir); err != nil {
		b.Fatal(err)
	}
	v := mustNew(b, tdx.Options{Root: f.PKI.Root, CollateralDir: dir})
	e := &attest.Evidence{TEE: attest.TDX, Report: q}
	ctx := context.Background()
	at := attest.Options{Now: f.Now}
	if c, err := v.Verify(ctx, e, at); err != nil || c.TCBStatus != "UpToDate" {
		b.Fatal(c, err)
	}
	warm := func() error {
		_, err := v.Verify(ctx, e, at)
		return err
	}

	msg := q[:632]
	sig := inteltest.SignRaw(f.AK, msg)
	p256 := func() error {
		if !intel.VerifyRawP256(&f.AK.PublicKey, msg, sig) {
			return errors.New("bad signature")
		}
		return nil
	}

	// go-tdx-guest has no warm state: each call parses and verifies the quote and the whole PCK
	// chain. It gets the same quote and root (passed explicitly, so it does not log) and no
	// collateral, so it does less appraisal than we do.
	pool := x509.NewCertPool()
	pool.AddCert(f.PKI.Root)
	ts := &verify.TimeSet{PckCertChain: f.Now, TcbInfo: f.Now, QeIdentity: f.Now, PckCrl: f.Now, RootCaCrl: f.Now}
	opts := &verify.Options{TrustedRoots: pool, Now: ts}
	lib := func() error { return verify.RawTdxQuote(q, opts) }

	w := benchratio.PerOp(b, warm)
	benchratio.Value(b, "tdx-verify-warm/p256-verify", w/benchratio.PerOp(b, p256))
	benchratio.Value(b, "tdx-verify-warm/go-tdx-guest-verify", w/benchratio.PerOp(b, lib))
}
