package azure

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-tpm/tpm2"

	"github.com/medicus-cloud/trust/attest"
)

// ParseAttest parses a TPMS_ATTEST that must be a quote, with nothing after it.
func ParseAttest(b []byte) (*tpm2.TPMSAttest, *tpm2.TPMSQuoteInfo, error) {
	const field = "tpm_quote.message"
	if len(b) == 0 || len(b) > 4096 {
		return nil, nil, attest.Malformed(field, "%d bytes", len(b))
	}
	a, err := tpm2.Unmarshal[tpm2.TPMSAttest](b)
	if err != nil {
		return nil, nil, attest.Malformed(field, "not a TPMS_ATTEST: %v", err)
	}
	if a.Magic != tpm2.TPMGeneratedValue {
		return nil, nil, attest.Malformed(field+".magic", "%#x, want TPM_GENERATED_VALUE", uint32(a.Magic))
	}
	if a.Type != tpm2.TPMSTAttestQuote {
		return nil, nil, attest.Malformed(field+".type", "%#x, want TPM_ST_ATTEST_QUOTE", uint16(a.Type))
	}
	q, err := a.Attested.Quote()
	if err != nil {
		return nil, nil, attest.Malformed(field+".attested", "%v", err)
	}
	if !bytes.Equal(tpm2.Marshal(a), b) {
		return nil, nil, attest.Malformed(field, "bytes after the TPMS_ATTEST")
	}
	return a, q, nil
}

// selected returns the PCR indices of a SHA-256-only selection, ascending.
func selected(sel tpm2.TPMLPCRSelection) ([]uint32, error) {
	const field = "tpm_quote.message.pcr_select"
	if len(sel.PCRSelections) != 1 {
		return nil, attest.Malformed(field, "%d banks selected, want the SHA-256 bank alone", len(sel.PCRSelections))
	}
	s := sel.PCRSelections[0]
	if s.Hash != tpm2.TPMAlgSHA256 {
		return nil, attest.Malformed(field, "bank %#x, want SHA-256", uint16(s.Hash))
	}
	var out []uint32
	for i, byt := range s.PCRSelect {
		for bit := 0; bit < 8; bit++ {
			if byt&(1<<bit) == 0 {
				continue
			}
			pcr := uint32(i*8 + bit)
			if pcr > MaxPCR {
				return nil, attest.Malformed(field, "PCR %d selected, highest is %d", pcr, MaxPCR)
			}
			out = append(out, pcr)
		}
	}
	if len(out) == 0 {
		return nil, attest.Malformed(field, "no PCR selected")
	}
	return out, nil
}

// verifyQuote checks that ak signed the quote and that the PCR values are the ones it covers. It
// returns the attestation structure and the PCR values by index.
func verifyQuote(q *Quote, ak *rsa.PublicKey) (*tpm2.TPMSAttest, map[uint32][]byte, error) {
	a, info, err := ParseAttest(q.Attest)
	if err != nil {
		return nil, nil, err
	}
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](q.Signature)
	if err != nil {
		return nil, nil, attest.Malformed("tpm_quote.signature", "not a TPMT_SIGNATURE: %v", err)
	}
	if sig.SigAlg != tpm2.TPMAlgRSASSA {
		return nil, nil, attest.Malformed("tpm_quote.signature", "scheme %#x, want RSASSA (the Azure vTPM AK's)", uint16(sig.SigAlg))
	}
	rs, err := sig.Signature.RSASSA()
	if err != nil {
		return nil, nil, attest.Malformed("tpm_quote.signature", "%v", err)
	}
	var h crypto.Hash
	switch rs.Hash {
	case tpm2.TPMAlgSHA256:
		h = crypto.SHA256
	case tpm2.TPMAlgSHA384:
		h = crypto.SHA384
	default:
		return nil, nil, attest.Malformed("tpm_quote.signature", "hash %#x, want SHA-256 or SHA-384", uint16(rs.Hash))
	}
	d := h.New()
	d.Write(q.Attest)
	if err := rsa.VerifyPKCS1v15(ak, h, d.Sum(nil), rs.Sig.Buffer); err != nil {
		return nil, nil, attest.NotAuthentic("tpm_quote.signature", errors.New("not signed by the vTPM attestation key of the runtime data"))
	}
	idx, err := selected(info.PCRSelect)
	if err != nil {
		return nil, nil, err
	}
	pcrs, err := pcrValues(q, idx)
	if err != nil {
		return nil, nil, err
	}
	d = h.New()
	for _, i := range idx {
		d.Write(pcrs[i])
	}
	if !bytes.Equal(d.Sum(nil), info.PCRDigest.Buffer) {
		return nil, nil, attest.NotAuthentic("tpm_quote.pcr_digest", errors.New("the PCR values do not hash to the quote's PCR digest"))
	}
	return a, pcrs, nil
}

// values maps the evidence's PCR values onto the quote's selection; the sets must be equal.
func pcrValues(q *Quote, idx []uint32) (map[uint32][]byte, error) {
	const field = "tpm_quote.pcrs"
	out := make(map[uint32][]byte, len(idx))
	if q.PCRList != nil {
		if len(q.PCRList) != len(idx) {
			return nil, attest.NotAuthentic(field, fmt.Errorf("%d PCR values for a quote over %d PCRs (%s)", len(q.PCRList), len(idx), list(idx)))
		}
		for n, i := range idx {
			out[i] = q.PCRList[n]
		}
	} else {
		var got []uint32
		for i := range q.PCRs {
			got = append(got, i)
		}
		slices.Sort(got)
		if !slices.Equal(got, idx) {
			return nil, attest.NotAuthentic(field, fmt.Errorf("values for PCRs %s, the quote covers PCRs %s", list(got), list(idx)))
		}
		for _, i := range idx {
			out[i] = q.PCRs[i]
		}
	}
	for i, v := range out {
		if len(v) != sha256.Size {
			return nil, attest.Malformed(fmt.Sprintf("%s.%d", field, i), "%d bytes, want a SHA-256 value", len(v))
		}
	}
	return out, nil
}

func list(idx []uint32) string {
	s := make([]string, len(idx))
	for i, v := range idx {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ",")
}
