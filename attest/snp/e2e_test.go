package snp

import (
	"context"
	"crypto/rand"
	"os"
	"syscall"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/snpguest"
	"github.com/medicus-cloud/trust/seal"
)

// TestProviderToVerifier runs the guest side (enclave/snp over a fake configfs-tsm whose
// "firmware" signs with the fixture's VCEK) into this verifier, and checks that the report data
// the service will compare is the workload key's binding.
func TestProviderToVerifier(t *testing.T) {
	f := newFixture(t, Genoa, fixtureOpts{})
	sub := faketsm.ReportV7(0)
	sub.Random = rand.Reader
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		switch attr {
		case "provider":
			return []byte("sev_guest\n"), nil
		case "auxblob":
			return f.table(t), nil
		case "outblob":
			in := e.InAttrs["inblob"].Value
			if len(in) != 64 {
				return nil, syscall.EINVAL
			}
			var rd [64]byte
			copy(rd[:], in)
			return f.report(t, reportSpec{reportData: rd}), nil
		case "privlevel_floor":
			return []byte("0\n"), nil
		}
		return nil, os.ErrNotExist
	}
	p, err := snpguest.New(snpguest.Options{TSMClient: &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}})
	if err != nil {
		t.Fatal(err)
	}
	key, err := enclave.NewKey(seal.X25519)
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("0123456789abcdef-expiry-hmac")
	want := key.ReportData(nonce)
	ev, err := p.Evidence(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, Options{Roots: f.roots, CertsDir: crlDir(t, f.crl(t, t0, 365*24*3600*1e9))})
	c, err := v.Verify(context.Background(), ev, attest.Options{Now: tVerify})
	if err != nil {
		t.Fatal(err)
	}
	if string(c.ReportData) != string(want[:]) || c.Platform["product"] != Genoa {
		t.Fatalf("report data %x, want %x; platform %v", c.ReportData, want, c.Platform)
	}
}
