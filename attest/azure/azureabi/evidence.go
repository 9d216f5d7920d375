package azureabi

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"strings"

	"github.com/medicus-cloud/trust/attest"
)

// The TEE types of Azure confidential VMs, whose evidence goes through the paravisor and vTPM.
const (
	SNP attest.TEE = "azure-snp"
	TDX attest.TEE = "azure-tdx"
)

// Format and Version identify this package's own evidence document.
const (
	Format  = "medicus-trust/azure-vtpm"
	Version = 1
)

// MaxEvidenceSize bounds an encoded evidence document.
const MaxEvidenceSize = 256 << 10

// Evidence is Azure CVM evidence, decoded.
type Evidence struct {
	TEE       attest.TEE
	HCLReport []byte
	Quote     Quote
	// VCEK is the SNP VCEK (DER or PEM), if the attester sent it (Azure's host serves it from
	// IMDS); else the certificate table, the collateral or the KDS supply it.
	VCEK []byte
	// Certificates is an SNP certificate table, if any.
	Certificates []byte
	// TDQuote is the TD quote Azure's quoting service made from the HCL report's TD report.
	TDQuote []byte
}

// document is this package's own encoding (see the package documentation).
type document struct {
	Format       string        `json:"format"`
	Version      int           `json:"version"`
	TEE          attest.TEE    `json:"tee"`
	HCLReport    []byte        `json:"hcl_report"`
	TPMQuote     documentQuote `json:"tpm_quote"`
	VCEK         []byte        `json:"vcek,omitempty"`
	Certificates []byte        `json:"certificates,omitempty"`
	TDQuote      []byte        `json:"td_quote,omitempty"`
}

type documentQuote struct {
	Attest    []byte                `json:"attest"`
	Signature []byte                `json:"signature"`
	PCRs      map[uint32]attest.Hex `json:"pcrs"`
}

// Encode writes e in this package's own encoding.
func (e *Evidence) Encode() ([]byte, error) {
	d := document{Format: Format, Version: Version, TEE: e.TEE, HCLReport: e.HCLReport,
		TPMQuote: documentQuote{Attest: e.Quote.Attest, Signature: e.Quote.Signature, PCRs: map[uint32]attest.Hex{}},
		VCEK:     e.VCEK, Certificates: e.Certificates, TDQuote: e.TDQuote}
	for i, v := range e.Quote.PCRs {
		d.TPMQuote.PCRs[i] = v
	}
	if e.Quote.PCRs == nil && e.Quote.PCRList != nil {
		// Values in selection order (CoCo's): this encoding names each by its index.
		idx, err := SelectedPCRs(e.Quote.Attest)
		if err != nil {
			return nil, err
		}
		if len(idx) != len(e.Quote.PCRList) {
			return nil, attest.Malformed("tpm_quote.pcrs", "%d values for a quote over %d PCRs", len(e.Quote.PCRList), len(idx))
		}
		for n, i := range idx {
			d.TPMQuote.PCRs[i] = e.Quote.PCRList[n]
		}
	}
	return json.MarshalIndent(d, "", "  ")
}

// CoCo guest components' az-snp-vtpm / az-tdx-vtpm evidence, version 1.
type cocoV1 struct {
	Version  int `json:"version"`
	TPMQuote struct {
		Signature string   `json:"signature"`
		Message   string   `json:"message"`
		PCRs      []string `json:"pcrs"`
	} `json:"tpm_quote"`
	HCLReport string `json:"hcl_report"`
	VCEK      string `json:"vcek"`
	TDQuote   string `json:"td_quote"`
}

// The unversioned first form: byte arrays, the VCEK in PEM; SNP names the quote "quote" and the
// HCL report "report", TDX "tpm_quote" and "hcl_report".
type cocoQuoteV0 struct {
	Signature []uint8   `json:"signature"`
	Message   []uint8   `json:"message"`
	PCRs      [][]uint8 `json:"pcrs"`
}

type cocoV0 struct {
	Quote     *cocoQuoteV0 `json:"quote"`
	Report    []uint8      `json:"report"`
	VCEK      string       `json:"vcek"`
	TPMQuote  *cocoQuoteV0 `json:"tpm_quote"`
	HCLReport []uint8      `json:"hcl_report"`
	TDQuote   []uint8      `json:"td_quote"`
}

// Decode reads evidence in this package's encoding or in the JSON of the Confidential Containers
// attesters (az-snp-vtpm, az-tdx-vtpm; version 1 or the unversioned first form). tee, if not
// empty, is the TEE the caller expects; the document must agree.
func Decode(b []byte, tee attest.TEE) (*Evidence, error) {
	if len(b) > MaxEvidenceSize {
		return nil, attest.Malformed("evidence", "%d bytes, limit %d", len(b), MaxEvidenceSize)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, attest.Malformed("evidence", "not a JSON object: %v", err)
	}
	var e *Evidence
	var err error
	switch {
	case keys["format"] != nil:
		e, err = decodeOwn(b)
	case keys["version"] != nil:
		e, err = decodeCoCoV1(b)
	default:
		e, err = decodeCoCoV0(b)
	}
	if err != nil {
		return nil, err
	}
	if tee != "" && e.TEE != tee {
		return nil, attest.Malformed("tee", "the evidence is %s, want %s", e.TEE, tee)
	}
	return e, nil
}

func decodeOwn(b []byte) (*Evidence, error) {
	var d document
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, attest.Malformed("evidence", "%v", err)
	}
	if d.Format != Format || d.Version != Version {
		return nil, attest.Malformed("evidence.format", "%q version %d, want %q version %d", d.Format, d.Version, Format, Version)
	}
	if d.TEE != SNP && d.TEE != TDX {
		return nil, attest.Malformed("evidence.tee", "%q, want %s or %s", d.TEE, SNP, TDX)
	}
	e := &Evidence{TEE: d.TEE, HCLReport: d.HCLReport, VCEK: d.VCEK, Certificates: d.Certificates, TDQuote: d.TDQuote,
		Quote: Quote{Attest: d.TPMQuote.Attest, Signature: d.TPMQuote.Signature, PCRs: map[uint32][]byte{}}}
	for i, v := range d.TPMQuote.PCRs {
		e.Quote.PCRs[i] = v
	}
	return e, e.Check()
}

func decodeCoCoV1(b []byte) (*Evidence, error) {
	var d cocoV1
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, attest.Malformed("evidence", "%v", err)
	}
	if d.Version != 1 {
		return nil, attest.Malformed("evidence.version", "%d, want 1", d.Version)
	}
	e := &Evidence{TEE: SNP}
	var err error
	if e.HCLReport, err = b64("hcl_report", d.HCLReport); err != nil {
		return nil, err
	}
	sig, err := unhex("tpm_quote.signature", d.TPMQuote.Signature)
	if err != nil {
		return nil, err
	}
	e.Quote.Signature = RSASSASignature(sig)
	if e.Quote.Attest, err = unhex("tpm_quote.message", d.TPMQuote.Message); err != nil {
		return nil, err
	}
	e.Quote.PCRList = [][]byte{}
	for _, p := range d.TPMQuote.PCRs {
		v, err := unhex("tpm_quote.pcrs", p)
		if err != nil {
			return nil, err
		}
		e.Quote.PCRList = append(e.Quote.PCRList, v)
	}
	switch {
	case d.TDQuote != "" && d.VCEK == "":
		e.TEE = TDX
		if e.TDQuote, err = b64("td_quote", d.TDQuote); err != nil {
			return nil, err
		}
	case d.VCEK != "" && d.TDQuote == "":
		if e.VCEK, err = b64("vcek", d.VCEK); err != nil {
			return nil, err
		}
	default:
		return nil, attest.Malformed("evidence", "want either vcek (az-snp-vtpm) or td_quote (az-tdx-vtpm)")
	}
	return e, e.Check()
}

func decodeCoCoV0(b []byte) (*Evidence, error) {
	var d cocoV0
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, attest.Malformed("evidence", "%v", err)
	}
	var q *cocoQuoteV0
	e := &Evidence{}
	switch {
	case d.Quote != nil && d.Report != nil && d.TPMQuote == nil:
		e.TEE, q, e.HCLReport = SNP, d.Quote, d.Report
		if d.VCEK != "" {
			blk, _ := pem.Decode([]byte(d.VCEK))
			if blk == nil || blk.Type != "CERTIFICATE" {
				return nil, attest.Malformed("vcek", "not a PEM certificate")
			}
			e.VCEK = blk.Bytes
		}
	case d.TPMQuote != nil && d.HCLReport != nil && d.TDQuote != nil && d.Quote == nil:
		e.TEE, q, e.HCLReport, e.TDQuote = TDX, d.TPMQuote, d.HCLReport, d.TDQuote
	default:
		return nil, attest.Malformed("evidence", "not Azure vTPM evidence: want format, version, or the first CoCo form (quote and report, or tpm_quote, hcl_report and td_quote)")
	}
	e.Quote = Quote{Attest: q.Message, Signature: RSASSASignature(q.Signature), PCRList: q.PCRs}
	if e.Quote.PCRList == nil {
		e.Quote.PCRList = [][]byte{}
	}
	return e, e.Check()
}

// Check requires the parts every Azure evidence has.
func (e *Evidence) Check() error {
	switch {
	case len(e.HCLReport) == 0:
		return attest.Malformed("hcl_report", "missing")
	case len(e.Quote.Attest) == 0:
		return attest.Malformed("tpm_quote.message", "missing")
	case len(e.Quote.Signature) == 0:
		return attest.Malformed("tpm_quote.signature", "missing")
	case e.TEE == TDX && len(e.TDQuote) == 0:
		return attest.Malformed("td_quote", "missing")
	case e.TEE == SNP && len(e.TDQuote) != 0:
		return attest.Malformed("td_quote", "present in SEV-SNP evidence")
	}
	return nil
}

// b64 decodes base64 in either alphabet, padded or not (CoCo writes URL-safe with padding).
func b64(field, s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, attest.Malformed(field, "not base64: %v", err)
	}
	return b, nil
}

func unhex(field, s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, attest.Malformed(field, "not hex: %v", err)
	}
	return b, nil
}
