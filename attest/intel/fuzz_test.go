package intel_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/intel/inteltest"
)

// FuzzParseTCBInfo parses TCB info bodies, seeded with Intel's real one.
func FuzzParseTCBInfo(f *testing.F) {
	f.Add(read(f, "spr_e4/tcbinfo.json"))
	f.Add(read(f, "spr_e4/qeidentity.json"))
	f.Add(read(f, "sgx_v2/tcbinfo.json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, signed, sig, err := intel.ParseTCBInfo(b)
		if err != nil {
			return
		}
		if len(sig) != 64 || len(signed) == 0 || len(info.TCBLevels) == 0 {
			t.Fatalf("accepted a TCB info without signature or levels")
		}
		for _, l := range info.TCBLevels {
			if len(l.TCB.SGXTCBComponents) != 16 {
				t.Fatal("accepted a level without 16 SGX components")
			}
		}
		// Evaluation must not panic whatever the levels hold.
		_, _ = info.PlatformLevel(&intel.PCKExtensions{}, make([]byte, 16))
		_, _ = info.TDXModuleLevel([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 48), make([]byte, 8))
	})
}

// FuzzParseEnclaveIdentity parses QE identity bodies, seeded with Intel's real one.
func FuzzParseEnclaveIdentity(f *testing.F) {
	f.Add(read(f, "spr_e4/qeidentity.json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, _, _, err := intel.ParseEnclaveIdentity(b)
		if err != nil {
			return
		}
		_, _ = id.Match(&intel.EnclaveReport{ISVSVN: 3})
	})
}

// FuzzParsePCKExtensions parses SGX extension values, seeded with the real PCK's and ours.
func FuzzParsePCKExtensions(f *testing.F) {
	certs, err := intel.ParsePEMChain(read(f, "spr_e4_pck_chain.pem"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range certs[0].Extensions {
		if e.Id.Equal(intel.OIDSGXExtensions) {
			f.Add(e.Value)
		}
	}
	smt := true
	ours, err := inteltest.SGXExtension(inteltest.PCKSpec{PCESVN: 65535, SMT: &smt})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ours.Value)
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &x509.Certificate{Extensions: []pkix.Extension{{Id: intel.OIDSGXExtensions, Value: b}}}
		_, _ = intel.ParsePCKExtensions(c)
	})
}

// FuzzCRLAndChain parses CRLs and PEM chains, seeded with Intel's.
func FuzzCRLAndChain(f *testing.F) {
	f.Add(read(f, "spr_e4/pckcrl.der"))
	f.Add(read(f, "spr_e4/rootcrl.der"))
	f.Add(read(f, "spr_e4/pckcrl_chain.pem"))
	root := intel.IntelRoot()
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = intel.VerifyCRL(b, root, realTime)
		_, _ = intel.ParsePEMChain(b)
	})
}
