package snp

import (
	"context"
	"crypto/rand"
	"os"
	"syscall"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-sev-guest/abi"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/snpguest"
	"github.com/medicus-cloud/trust/seal"
)

// TestProviderToVerifier runs the guest side (enclave/snpguest over a fake configfs-tsm whose
// "firmware" signs under the fixture's AMD hierarchy) into this verifier, and checks that the
// report data the service will compare is the workload key's binding. The cases are the clouds'
// SEV-SNP guests without a paravisor: GCP's (configfs-tsm, VCEK-signed, the certificate table
// from the host), AWS's (configfs-tsm, VLEK-signed: the extended report's certificate table
// carries the VLEK AWS was issued), and bare metal (the same as GCP's).
func TestProviderToVerifier(t *testing.T) {
	tests := []struct {
		name    string
		product string
		signer  abi.ReportSigner
		want    string // Platform["signer"]
	}{
		{"gcp or bare metal: Genoa, VCEK", Genoa, abi.VcekReportSigner, SignerVCEK},
		{"aws: Milan, VLEK", Milan, abi.VlekReportSigner, SignerVLEK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.product, fixtureOpts{})
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
					return f.report(t, reportSpec{reportData: rd, signer: tc.signer}), nil
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
			if err := attest.CheckBinding(v, c, want); err != nil {
				t.Fatal(err)
			}
			if c.Platform["product"] != tc.product || c.Platform["signer"] != tc.want {
				t.Fatalf("platform %v", c.Platform)
			}
		})
	}
}
