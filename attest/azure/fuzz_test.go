package azure_test

import (
	"context"
	"errors"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/snp"
)

func captures(f *testing.F) [][]byte {
	var out [][]byte
	for _, n := range []string{"coco-az-snp-vtpm-evidence-v1.json", "coco-az-tdx-vtpm-evidence-v1.json"} {
		out = append(out, readFile(f, n))
	}
	return out
}

// wantAttestError fails unless err is nil or an attest.Error of a known kind.
func wantAttestError(t *testing.T, err error) {
	var ae *attest.Error
	if err != nil && (!errors.As(err, &ae) || !(errors.Is(err, attest.ErrMalformed) || errors.Is(err, attest.ErrNotAuthentic) || errors.Is(err, attest.ErrUnavailable))) {
		t.Fatalf("error not classified: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range captures(f) {
		f.Add(c)
	}
	f.Add([]byte(`{"quote":{"signature":[1],"message":[1],"pcrs":[[1]]},"report":[1]}`))
	f.Add([]byte(`{"format":"medicus-trust/azure-vtpm","version":1,"tee":"azure-tdx"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := azure.Decode(b, "")
		wantAttestError(t, err)
		if err == nil && e.TEE != azure.SNP && e.TEE != azure.TDX {
			t.Fatalf("decoded TEE %q", e.TEE)
		}
		if err == nil {
			// Re-encoding maps CoCo's PCR list by the quote's selection (azureabi.SelectedPCRs);
			// what it writes must decode again.
			if own, err := e.Encode(); err == nil {
				if _, err := azure.Decode(own, e.TEE); err != nil {
					wantAttestError(t, err)
				}
			} else {
				wantAttestError(t, err)
			}
		}
	})
}

func FuzzParseHCLReport(f *testing.F) {
	for _, c := range captures(f) {
		e, err := azure.Decode(c, "")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.HCLReport)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := azure.ParseHCLReport(b)
		wantAttestError(t, err)
		if err == nil {
			_ = r.RuntimeDataDigest()
			rd, err := azure.ParseRuntimeData(r.RuntimeData)
			wantAttestError(t, err)
			if err == nil {
				_, err = rd.AK()
				wantAttestError(t, err)
			}
		}
	})
}

func FuzzParseAttest(f *testing.F) {
	for _, c := range captures(f) {
		e, err := azure.Decode(c, "")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.Quote.Attest)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, err := azure.ParseAttest(b)
		wantAttestError(t, err)
	})
}

// FuzzVerify mutates the real SNP capture's parts and requires a classified error or success.
func FuzzVerify(f *testing.F) {
	c := captures(f)[0]
	f.Add(c, 0, byte(0))
	sv, err := snp.New(snp.Options{Revocation: snp.RevocationIfAvailable})
	if err != nil {
		f.Fatal(err)
	}
	v := azure.NewSNP(sv)
	e0, err := azure.Decode(c, azure.SNP)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc []byte, at int, flip byte) {
		e, err := azure.Decode(doc, azure.SNP)
		if err != nil {
			e = &azure.Evidence{TEE: azure.SNP, HCLReport: append([]byte(nil), e0.HCLReport...), Quote: e0.Quote, VCEK: e0.VCEK}
			if at >= 0 && at < len(e.HCLReport) {
				e.HCLReport[at] ^= flip
			}
		}
		_, err = v.VerifyEvidence(context.Background(), e, nil, attest.Options{Now: realTime})
		wantAttestError(t, err)
	})
}
