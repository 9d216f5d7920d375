package intel

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// MaxJSON bounds a TCB info or enclave identity body.
const MaxJSON = 1 << 20

// HexBytes is a byte string that Intel's JSON writes as hex (either case).
type HexBytes []byte

// UnmarshalJSON implements json.Unmarshaler.
func (h *HexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("not hex: %w", err)
	}
	*h = d
	return nil
}

// MarshalJSON writes upper-case hex, as Intel does.
func (h HexBytes) MarshalJSON() ([]byte, error) {
	return json.Marshal(strings.ToUpper(hex.EncodeToString(h)))
}

// TCBComponent is one SVN of a TCB level.
type TCBComponent struct {
	SVN      int    `json:"svn"`
	Category string `json:"category,omitempty"`
	Type     string `json:"type,omitempty"`
}

// TCB is the TCB of a level: sgxtcbcomponents/pcesvn/tdxtcbcomponents in TCB info, isvsvn in
// enclave identities and TDX module identities.
type TCB struct {
	SGXTCBComponents []TCBComponent `json:"sgxtcbcomponents,omitempty"`
	PCESVN           int            `json:"pcesvn"`
	TDXTCBComponents []TCBComponent `json:"tdxtcbcomponents,omitempty"`
	ISVSVN           int            `json:"isvsvn"`
}

// TCBLevel is one entry of a tcbLevels array.
type TCBLevel struct {
	TCB         TCB       `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   Status    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs,omitempty"`
}

// TDXModule is the TCB info's identity of TDX modules with major version 0.
type TDXModule struct {
	MRSigner       HexBytes `json:"mrsigner"`
	Attributes     HexBytes `json:"attributes"`
	AttributesMask HexBytes `json:"attributesMask"`
}

// TDXModuleIdentity is the identity and TCB levels of one TDX module major version.
type TDXModuleIdentity struct {
	ID string `json:"id"`
	TDXModule
	TCBLevels []TCBLevel `json:"tcbLevels"`
}

// TCBInfo is Intel's TCB info: version 3 (SGX and TDX), or version 2 (SGX only, as PCS API v3
// serves it), which ParseTCBInfo maps onto the same fields (ID "SGX", SGXTCBComponents).
type TCBInfo struct {
	ID                      string              `json:"id"`
	Version                 int                 `json:"version"`
	IssueDate               time.Time           `json:"issueDate"`
	NextUpdate              time.Time           `json:"nextUpdate"`
	FMSPC                   string              `json:"fmspc"`
	PCEID                   string              `json:"pceId"`
	TCBType                 int                 `json:"tcbType"`
	TCBEvaluationDataNumber int                 `json:"tcbEvaluationDataNumber"`
	TDXModule               *TDXModule          `json:"tdxModule,omitempty"`
	TDXModuleIdentities     []TDXModuleIdentity `json:"tdxModuleIdentities,omitempty"`
	TCBLevels               []TCBLevel          `json:"tcbLevels"`
}

// EnclaveIdentity is Intel's identity of a quoting enclave (QE, QVE, TD_QE), version 2.
type EnclaveIdentity struct {
	ID                      string     `json:"id"`
	Version                 int        `json:"version"`
	IssueDate               time.Time  `json:"issueDate"`
	NextUpdate              time.Time  `json:"nextUpdate"`
	TCBEvaluationDataNumber int        `json:"tcbEvaluationDataNumber"`
	MiscSelect              HexBytes   `json:"miscselect"`
	MiscSelectMask          HexBytes   `json:"miscselectMask"`
	Attributes              HexBytes   `json:"attributes"`
	AttributesMask          HexBytes   `json:"attributesMask"`
	MRSigner                HexBytes   `json:"mrsigner"`
	ISVProdID               int        `json:"isvprodid"`
	TCBLevels               []TCBLevel `json:"tcbLevels"`
}

// signedBody splits {"<name>": {...}, "signature": "hex"} keeping the exact bytes of the signed
// object, which is what Intel signs.
func signedBody(body []byte, name string) (signed json.RawMessage, sig []byte, err error) {
	if len(body) > MaxJSON {
		return nil, nil, fmt.Errorf("body is %d bytes, limit %d", len(body), MaxJSON)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(body, &outer); err != nil {
		return nil, nil, fmt.Errorf("not JSON: %w", err)
	}
	signed, ok := outer[name]
	if !ok {
		return nil, nil, fmt.Errorf("no %q member", name)
	}
	var sigHex string
	if err := json.Unmarshal(outer["signature"], &sigHex); err != nil {
		return nil, nil, fmt.Errorf("signature: %v", err)
	}
	sig, err = hex.DecodeString(sigHex)
	if err != nil || len(sig) != 64 {
		return nil, nil, errors.New("signature is not 64 bytes of hex")
	}
	return signed, sig, nil
}

// ParseTCBInfo parses a TCB info response body as PCS serves it. It does not check the
// signature: see VerifySignedJSON.
func ParseTCBInfo(body []byte) (info *TCBInfo, signed, sig []byte, err error) {
	signed, sig, err = signedBody(body, "tcbInfo")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tcbinfo: %w", err)
	}
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(signed, &head); err != nil {
		return nil, nil, nil, fmt.Errorf("tcbinfo: %w", err)
	}
	switch head.Version {
	case 2:
		if info, err = parseTCBInfoV2(signed); err != nil {
			return nil, nil, nil, fmt.Errorf("tcbinfo: version 2: %w", err)
		}
	case 3:
		info = &TCBInfo{}
		if err := json.Unmarshal(signed, info); err != nil {
			return nil, nil, nil, fmt.Errorf("tcbinfo: %w", err)
		}
	default:
		return nil, nil, nil, fmt.Errorf("tcbinfo: version %d, want 2 (SGX) or 3", head.Version)
	}
	if info.ID != "TDX" && info.ID != "SGX" {
		return nil, nil, nil, fmt.Errorf("tcbinfo: id %q, want TDX or SGX", info.ID)
	}
	if _, err := hex.DecodeString(info.FMSPC); err != nil || len(info.FMSPC) != 12 {
		return nil, nil, nil, fmt.Errorf("tcbinfo: fmspc %q is not 6 bytes of hex", info.FMSPC)
	}
	if len(info.TCBLevels) == 0 {
		return nil, nil, nil, errors.New("tcbinfo: no tcbLevels")
	}
	for i, l := range info.TCBLevels {
		if len(l.TCB.SGXTCBComponents) != 16 {
			return nil, nil, nil, fmt.Errorf("tcbinfo: tcbLevels[%d] has %d sgxtcbcomponents, want 16", i, len(l.TCB.SGXTCBComponents))
		}
		if info.ID == "TDX" && len(l.TCB.TDXTCBComponents) != 16 {
			return nil, nil, nil, fmt.Errorf("tcbinfo: tcbLevels[%d] has %d tdxtcbcomponents, want 16", i, len(l.TCB.TDXTCBComponents))
		}
		if !l.TCBStatus.known() {
			return nil, nil, nil, fmt.Errorf("tcbinfo: tcbLevels[%d] has unknown status %q", i, l.TCBStatus)
		}
	}
	for i, m := range info.TDXModuleIdentities {
		for j, l := range m.TCBLevels {
			if !l.TCBStatus.known() {
				return nil, nil, nil, fmt.Errorf("tcbinfo: tdxModuleIdentities[%d].tcbLevels[%d] has unknown status %q", i, j, l.TCBStatus)
			}
		}
	}
	if info.ID == "TDX" && info.TDXModule == nil {
		return nil, nil, nil, errors.New("tcbinfo: TDX TCB info without tdxModule")
	}
	return info, signed, sig, nil
}

// tcbLevelV2 is a TCB level of TCB info version 2: the 16 CPUSVN components are members
// sgxtcbcomp01svn..sgxtcbcomp16svn of "tcb", beside pcesvn (Intel PCS API v3, "TCB Info V2").
type tcbLevelV2 struct {
	TCB         map[string]json.Number `json:"tcb"`
	TCBDate     time.Time              `json:"tcbDate"`
	TCBStatus   Status                 `json:"tcbStatus"`
	AdvisoryIDs []string               `json:"advisoryIDs,omitempty"`
}

// parseTCBInfoV2 reads TCB info version 2. It has no "id" (it is SGX only) and no TDX fields;
// each level's tcb must hold exactly the 16 component SVNs (0-255) and pcesvn (0-65535).
func parseTCBInfoV2(signed []byte) (*TCBInfo, error) {
	var v2 struct {
		ID                      *string         `json:"id"`
		Version                 int             `json:"version"`
		IssueDate               time.Time       `json:"issueDate"`
		NextUpdate              time.Time       `json:"nextUpdate"`
		FMSPC                   string          `json:"fmspc"`
		PCEID                   string          `json:"pceId"`
		TCBType                 int             `json:"tcbType"`
		TCBEvaluationDataNumber int             `json:"tcbEvaluationDataNumber"`
		TDXModule               json.RawMessage `json:"tdxModule"`
		TCBLevels               []tcbLevelV2    `json:"tcbLevels"`
	}
	dec := json.NewDecoder(bytes.NewReader(signed))
	dec.UseNumber()
	if err := dec.Decode(&v2); err != nil {
		return nil, err
	}
	if v2.ID != nil && *v2.ID != "SGX" {
		return nil, fmt.Errorf("id %q: version 2 TCB info is SGX only", *v2.ID)
	}
	if v2.TDXModule != nil {
		return nil, errors.New("tdxModule: version 2 TCB info is SGX only")
	}
	info := &TCBInfo{ID: "SGX", Version: 2, IssueDate: v2.IssueDate, NextUpdate: v2.NextUpdate, FMSPC: v2.FMSPC,
		PCEID: v2.PCEID, TCBType: v2.TCBType, TCBEvaluationDataNumber: v2.TCBEvaluationDataNumber}
	for i, l := range v2.TCBLevels {
		if len(l.TCB) != 17 {
			return nil, fmt.Errorf("tcbLevels[%d].tcb has %d members, want sgxtcbcomp01svn..sgxtcbcomp16svn and pcesvn", i, len(l.TCB))
		}
		lvl := TCBLevel{TCBDate: l.TCBDate, TCBStatus: l.TCBStatus, AdvisoryIDs: l.AdvisoryIDs}
		svn := func(name string, max int64) (int, error) {
			n, ok := l.TCB[name]
			if !ok {
				return 0, fmt.Errorf("tcbLevels[%d].tcb has no %s", i, name)
			}
			v, err := n.Int64()
			if err != nil || v < 0 || v > max {
				return 0, fmt.Errorf("tcbLevels[%d].tcb.%s is %s, want 0-%d", i, name, n, max)
			}
			return int(v), nil
		}
		for c := 1; c <= 16; c++ {
			v, err := svn(fmt.Sprintf("sgxtcbcomp%02dsvn", c), 255)
			if err != nil {
				return nil, err
			}
			lvl.TCB.SGXTCBComponents = append(lvl.TCB.SGXTCBComponents, TCBComponent{SVN: v})
		}
		var err error
		if lvl.TCB.PCESVN, err = svn("pcesvn", 65535); err != nil {
			return nil, err
		}
		info.TCBLevels = append(info.TCBLevels, lvl)
	}
	return info, nil
}

// ParseEnclaveIdentity parses a QE identity response body as PCS serves it. It does not check
// the signature: see VerifySignedJSON.
func ParseEnclaveIdentity(body []byte) (id *EnclaveIdentity, signed, sig []byte, err error) {
	signed, sig, err = signedBody(body, "enclaveIdentity")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("qeidentity: %w", err)
	}
	id = &EnclaveIdentity{}
	if err := json.Unmarshal(signed, id); err != nil {
		return nil, nil, nil, fmt.Errorf("qeidentity: %w", err)
	}
	if id.Version != 2 {
		return nil, nil, nil, fmt.Errorf("qeidentity: version %d, want 2", id.Version)
	}
	switch {
	case len(id.MiscSelect) != 4 || len(id.MiscSelectMask) != 4:
		return nil, nil, nil, errors.New("qeidentity: miscselect and miscselectMask must be 4 bytes")
	case len(id.Attributes) != 16 || len(id.AttributesMask) != 16:
		return nil, nil, nil, errors.New("qeidentity: attributes and attributesMask must be 16 bytes")
	case len(id.MRSigner) != 32:
		return nil, nil, nil, errors.New("qeidentity: mrsigner must be 32 bytes")
	case len(id.TCBLevels) == 0:
		return nil, nil, nil, errors.New("qeidentity: no tcbLevels")
	}
	for i, l := range id.TCBLevels {
		if !l.TCBStatus.known() {
			return nil, nil, nil, fmt.Errorf("qeidentity: tcbLevels[%d] has unknown status %q", i, l.TCBStatus)
		}
	}
	return id, signed, sig, nil
}

// VerifySignedJSON checks Intel's raw r||s ECDSA P-256 signature over the signed object.
func VerifySignedJSON(signer *x509.Certificate, signed, sig []byte) error {
	pub, ok := signer.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return fmt.Errorf("signer %q does not have a P-256 key", signer.Subject.CommonName)
	}
	if !VerifyRawP256(pub, signed, sig) {
		return fmt.Errorf("signature does not verify under %q", signer.Subject.CommonName)
	}
	return nil
}

// VerifyRawP256 checks a 64-byte r||s ECDSA signature over SHA-256(msg).
func VerifyRawP256(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	h := sha256.Sum256(msg)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, h[:], r, s)
}

// checkSigner requires the signing certificate's common name, so that a PCK or other Intel
// certificate cannot sign collateral.
func checkSigner(c *x509.Certificate, want string) error {
	if strings.TrimSpace(c.Subject.CommonName) != want {
		return fmt.Errorf("signed by %q, want %q", c.Subject.CommonName, want)
	}
	return nil
}
