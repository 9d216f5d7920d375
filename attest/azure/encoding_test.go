package azure_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// toV0 rewrites a CoCo version 1 capture in the unversioned first form: byte arrays, and the
// VCEK in PEM.
func toV0(t *testing.T, v1 []byte) []byte {
	t.Helper()
	e, err := azure.Decode(v1, "")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		TPMQuote struct {
			Signature string `json:"signature"`
		} `json:"tpm_quote"`
	}
	if err := json.Unmarshal(v1, &d); err != nil {
		t.Fatal(err)
	}
	arr := func(b []byte) []int {
		out := make([]int, len(b))
		for i, c := range b {
			out[i] = int(c)
		}
		return out
	}
	sig := mustHex(t, d.TPMQuote.Signature)
	pcrs := [][]int{}
	for _, p := range e.Quote.PCRList {
		pcrs = append(pcrs, arr(p))
	}
	q := map[string]any{"signature": arr(sig), "message": arr(e.Quote.Attest), "pcrs": pcrs}
	var doc map[string]any
	if e.TEE == azure.SNP {
		doc = map[string]any{"quote": q, "report": arr(e.HCLReport), "vcek": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.VCEK}))}
	} else {
		doc = map[string]any{"tpm_quote": q, "hcl_report": arr(e.HCLReport), "td_quote": arr(e.TDQuote)}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	var h attest.Hex
	if err := h.UnmarshalText([]byte(s)); err != nil {
		t.Fatal(err)
	}
	return h
}

func realVerifiers(t *testing.T) map[attest.TEE]*azure.Verifier {
	sv, err := snp.New(snp.Options{Revocation: snp.RevocationIfAvailable})
	if err != nil {
		t.Fatal(err)
	}
	tv, err := tdx.New(tdx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return map[attest.TEE]*azure.Verifier{azure.SNP: azure.NewSNP(sv), azure.TDX: azure.NewTDX(tv)}
}

// TestEncodings verifies each real capture in all three encodings: CoCo's version 1 as captured,
// CoCo's first form and this package's own, both re-encoded from the capture.
func TestEncodings(t *testing.T) {
	vs := realVerifiers(t)
	for file, tee := range map[string]attest.TEE{"coco-az-snp-vtpm-evidence-v1.json": azure.SNP, "coco-az-tdx-vtpm-evidence-v1.json": azure.TDX} {
		v1 := readFile(t, file)
		e, err := azure.Decode(v1, tee)
		if err != nil {
			t.Fatal(err)
		}
		// Our encoding carries PCRs by index: resolve CoCo's list against the quote.
		own := *e
		_, info, err := azure.ParseAttest(e.Quote.Attest)
		if err != nil {
			t.Fatal(err)
		}
		own.Quote.PCRs = map[uint32][]byte{}
		n := 0
		for byt, bits := range info.PCRSelect.PCRSelections[0].PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if bits&(1<<bit) != 0 {
					own.Quote.PCRs[uint32(byt*8+bit)] = e.Quote.PCRList[n]
					n++
				}
			}
		}
		own.Quote.PCRList = nil
		ownDoc, err := own.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for name, doc := range map[string][]byte{"coco-v1": v1, "coco-v0": toV0(t, v1), "own": ownDoc} {
			t.Run(string(tee)+"/"+name, func(t *testing.T) {
				c, err := vs[tee].Verify(context.Background(), &attest.Evidence{TEE: tee, Report: doc}, attest.Options{Now: realTime})
				if err != nil {
					t.Fatal(err)
				}
				if string(c.ReportData) != "challenge" || len(c.Measurements) < 24 {
					t.Errorf("claims %+v", c)
				}
			})
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	snpV1 := string(readFile(t, "coco-az-snp-vtpm-evidence-v1.json"))
	vs := realVerifiers(t)
	tests := []struct {
		name  string
		doc   string
		tee   attest.TEE
		kind  error
		field string
	}{
		{"not JSON", "HCLA", "", attest.ErrMalformed, "evidence"},
		{"empty object", "{}", "", attest.ErrMalformed, "evidence"},
		{"other format", `{"format":"x","version":1}`, "", attest.ErrMalformed, "evidence.format"},
		{"own unknown field", `{"format":"medicus-trust/azure-vtpm","version":1,"extra":1}`, "", attest.ErrMalformed, "evidence"},
		{"own missing report", `{"format":"medicus-trust/azure-vtpm","version":1,"tee":"azure-snp","tpm_quote":{"attest":"AA==","signature":"AA=="}}`, "", attest.ErrMalformed, "hcl_report"},
		{"coco version 2", strings.Replace(snpV1, `"version": 1`, `"version": 2`, 1), "", attest.ErrMalformed, "evidence.version"},
		{"coco bad hex", strings.Replace(snpV1, `"message": "ff54`, `"message": "zz54`, 1), "", attest.ErrMalformed, "tpm_quote.message"},
		{"coco bad base64", strings.Replace(snpV1, `"hcl_report": "SENM`, `"hcl_report": "!!!!`, 1), "", attest.ErrMalformed, "hcl_report"},
		{"coco both vcek and td_quote", strings.Replace(snpV1, `"version": 1,`, `"version": 1, "td_quote": "AAAA",`, 1), "", attest.ErrMalformed, "evidence"},
		{"wrong TEE", snpV1, azure.TDX, attest.ErrMalformed, "tee"},
		{"v0 bad PEM", `{"quote":{"signature":[1],"message":[1],"pcrs":[]},"report":[1],"vcek":"nope"}`, "", attest.ErrMalformed, "vcek"},
		{"too large", strings.Repeat(" ", azure.MaxEvidenceSize+1), "", attest.ErrMalformed, "evidence"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := azure.Decode([]byte(tc.doc), tc.tee)
			wantErr(t, err, tc.kind, tc.field)
		})
	}
	t.Run("a PCR value missing", func(t *testing.T) {
		doc := strings.Replace(snpV1, `"e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced",`, "", 1)
		_, err := vs[azure.SNP].Verify(context.Background(), &attest.Evidence{TEE: azure.SNP, Report: []byte(doc)}, attest.Options{Now: realTime})
		wantErr(t, err, attest.ErrNotAuthentic, "tpm_quote.pcrs")
	})
	t.Run("signature of another message", func(t *testing.T) {
		tdx := string(readFile(t, "coco-az-tdx-vtpm-evidence-v1.json"))
		var d map[string]map[string]any
		_ = json.Unmarshal([]byte(tdx), &d)
		sig := d["tpm_quote"]["signature"].(string)
		doc := strings.Replace(snpV1, `"signature": "39425d`, `"signature": "`+sig+`", "x": "`, 1)
		_, err := vs[azure.SNP].Verify(context.Background(), &attest.Evidence{TEE: azure.SNP, Report: []byte(doc)}, attest.Options{Now: realTime})
		wantErr(t, err, attest.ErrNotAuthentic, "tpm_quote.signature")
	})
	t.Run("VCEK of another chip", func(t *testing.T) {
		var d map[string]any
		_ = json.Unmarshal([]byte(snpV1), &d)
		vcek, _ := base64.URLEncoding.DecodeString(d["vcek"].(string))
		vcek[len(vcek)-10] ^= 1
		d["vcek"] = base64.StdEncoding.EncodeToString(vcek)
		doc, _ := json.Marshal(d)
		_, err := vs[azure.SNP].Verify(context.Background(), &attest.Evidence{TEE: azure.SNP, Report: doc}, attest.Options{Now: realTime})
		if err == nil || !strings.HasPrefix(err.(*attest.Error).Field, "hcl_report.") {
			t.Fatalf("got %v, want a hcl_report.* error", err)
		}
	})
}
