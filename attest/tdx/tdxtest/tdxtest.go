// Package tdxtest makes TDX quotes and matching collateral under a private test PKI
// (inteltest), so that tests exercise every check of attest/tdx without hardware or network.
package tdxtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/intel/inteltest"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// QEMRSigner is the MRSIGNER of the test QE: Intel's TD QE signer, which the verifier pins.
var QEMRSigner = tdx.IntelTDQEMRSigner

// Fixture is a test platform: a PKI, a PCK for it, an attestation key and a time at which
// everything is valid.
type Fixture struct {
	PKI    *inteltest.PKI
	Spec   inteltest.PCKSpec
	PCK    *x509.Certificate
	PCKKey *ecdsa.PrivateKey
	AK     *ecdsa.PrivateKey
	// Now is inside every validity window the fixture makes.
	Now time.Time
}

// FMSPC is the test platform's FMSPC.
var FMSPC = [6]byte{0x90, 0xc0, 0x6f, 0x00, 0x00, 0x00}

// NewFixture makes a platform whose PCK TCB is components 5 and PCESVN 13.
func NewFixture() (*Fixture, error) {
	nb := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p, err := inteltest.New(nb, nb.AddDate(10, 0, 0))
	if err != nil {
		return nil, err
	}
	smt := true
	f := &Fixture{PKI: p, Now: nb.AddDate(0, 6, 0)}
	f.Spec = inteltest.PCKSpec{FMSPC: FMSPC, PCESVN: 13, SMT: &smt}
	for i := range f.Spec.TCBComponents {
		f.Spec.TCBComponents[i] = 5
	}
	if f.PCK, f.PCKKey, err = p.NewPCK(f.Spec); err != nil {
		return nil, err
	}
	if f.AK, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	return f, nil
}

// QuoteSpec describes a quote.
type QuoteSpec struct {
	// Version is 4 or 5.
	Version uint16
	// TD15 makes a v5 quote with a TD 1.5 body.
	TD15 bool
	Body tdx.TDReport
	// QE is the QE report; its report data is set to bind the attestation key.
	QE         intel.EnclaveReport
	QEAuthData []byte
	// PCKChain and PCKKey default to the fixture's.
	PCKChain []byte
	PCKKey   *ecdsa.PrivateKey
}

// DefaultSpec is a v4 quote of a production TD on a current TCB.
func (f *Fixture) DefaultSpec() QuoteSpec {
	s := QuoteSpec{Version: 4, QEAuthData: []byte("0123456789abcdef0123456789abcdef")}
	s.Body.TEETCBSVN = [16]byte{3, 0, 5}
	s.Body.MRTD[0] = 0x11
	s.Body.RTMR[0][0] = 0x20
	s.Body.XFAM = [8]byte{0xe7, 0x02, 0x06}
	s.Body.TDAttributes = [8]byte{0, 0, 0, 0x10} // SEPT_VE_DISABLE
	s.QE = intel.EnclaveReport{MRSIGNER: QEMRSigner, ISVProdID: 2, ISVSVN: 4}
	s.QE.Attributes[0] = 0x11
	return s
}

// Quote encodes and signs a quote.
func (f *Fixture) Quote(s QuoteSpec) []byte {
	if s.PCKChain == nil {
		s.PCKChain = f.PKI.PCKChain(f.PCK)
	}
	if s.PCKKey == nil {
		s.PCKKey = f.PCKKey
	}
	ak := make([]byte, 64)
	f.AK.PublicKey.X.FillBytes(ak[:32])
	f.AK.PublicKey.Y.FillBytes(ak[32:])
	h := sha256.New()
	h.Write(ak)
	h.Write(s.QEAuthData)
	s.QE.ReportData = [64]byte{}
	h.Sum(s.QE.ReportData[:0])
	qe := s.QE.Bytes()

	var q []byte
	q = binary.LittleEndian.AppendUint16(q, s.Version)
	q = binary.LittleEndian.AppendUint16(q, 2)
	q = binary.LittleEndian.AppendUint32(q, 0x81)
	q = append(q, 0, 0, 0, 0)
	q = append(q, tdx.IntelQEVendorID[:]...)
	q = append(q, make([]byte, 20)...)
	s.Body.TD15 = s.TD15
	body := s.Body.Bytes()
	if s.Version == 5 {
		typ := uint16(2)
		if s.TD15 {
			typ = 3
		}
		q = binary.LittleEndian.AppendUint16(q, typ)
		q = binary.LittleEndian.AppendUint32(q, uint32(len(body)))
	}
	q = append(q, body...)
	sig := inteltest.SignRaw(f.AK, q)

	var pckData []byte
	pckData = binary.LittleEndian.AppendUint16(pckData, 5)
	pckData = binary.LittleEndian.AppendUint32(pckData, uint32(len(s.PCKChain)))
	pckData = append(pckData, s.PCKChain...)
	var qeData []byte
	qeData = append(qeData, qe...)
	qeData = append(qeData, inteltest.SignRaw(s.PCKKey, qe)...)
	qeData = binary.LittleEndian.AppendUint16(qeData, uint16(len(s.QEAuthData)))
	qeData = append(qeData, s.QEAuthData...)
	qeData = append(qeData, pckData...)
	var sd []byte
	sd = append(sd, sig...)
	sd = append(sd, ak...)
	sd = binary.LittleEndian.AppendUint16(sd, 6)
	sd = binary.LittleEndian.AppendUint32(sd, uint32(len(qeData)))
	sd = append(sd, qeData...)
	q = binary.LittleEndian.AppendUint32(q, uint32(len(sd)))
	return append(q, sd...)
}

func comps(v ...int) []intel.TCBComponent {
	out := make([]intel.TCBComponent, 16)
	for i := range out {
		if i < len(v) {
			out[i].SVN = v[i]
		}
	}
	return out
}

func all(v int) []intel.TCBComponent {
	out := make([]intel.TCBComponent, 16)
	for i := range out {
		out[i].SVN = v
	}
	return out
}

// TCBInfo is a TDX TCB info for the fixture's FMSPC with two levels: UpToDate at SGX components
// 5, PCESVN 13 and TEE_TCB_SVN 3,0,5; OutOfDate below that (advisory INTEL-SA-00001). It has a
// TDX_01 module identity: UpToDate from SVN 2, OutOfDate below.
func (f *Fixture) TCBInfo() *intel.TCBInfo {
	return &intel.TCBInfo{
		ID: "TDX", Version: 3,
		IssueDate: f.Now.AddDate(0, 0, -1), NextUpdate: f.Now.AddDate(0, 1, 0),
		FMSPC: hex.EncodeToString(FMSPC[:]), PCEID: "0000", TCBType: 0, TCBEvaluationDataNumber: 17,
		TDXModule: &intel.TDXModule{MRSigner: make([]byte, 48), Attributes: make([]byte, 8), AttributesMask: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		TDXModuleIdentities: []intel.TDXModuleIdentity{{
			ID:        "TDX_01",
			TDXModule: intel.TDXModule{MRSigner: make([]byte, 48), Attributes: make([]byte, 8), AttributesMask: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
			TCBLevels: []intel.TCBLevel{
				{TCB: intel.TCB{ISVSVN: 2}, TCBDate: f.Now.AddDate(0, -2, 0), TCBStatus: intel.UpToDate},
				{TCB: intel.TCB{ISVSVN: 0}, TCBDate: f.Now.AddDate(-1, 0, 0), TCBStatus: intel.OutOfDate, AdvisoryIDs: []string{"INTEL-SA-00002"}},
			},
		}},
		TCBLevels: []intel.TCBLevel{
			{TCB: intel.TCB{SGXTCBComponents: all(5), PCESVN: 13, TDXTCBComponents: comps(3, 0, 5)}, TCBDate: f.Now.AddDate(0, -2, 0), TCBStatus: intel.UpToDate},
			{TCB: intel.TCB{SGXTCBComponents: all(0), PCESVN: 0, TDXTCBComponents: comps(0, 0, 0)}, TCBDate: f.Now.AddDate(-1, 0, 0), TCBStatus: intel.OutOfDate, AdvisoryIDs: []string{"INTEL-SA-00001"}},
		},
	}
}

// QEIdentity is a TD_QE identity matching DefaultSpec's QE: UpToDate from ISVSVN 4.
func (f *Fixture) QEIdentity() *intel.EnclaveIdentity {
	attr := make([]byte, 16)
	attr[0] = 0x11
	mask := []byte{0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}
	return &intel.EnclaveIdentity{
		ID: "TD_QE", Version: 2,
		IssueDate: f.Now.AddDate(0, 0, -1), NextUpdate: f.Now.AddDate(0, 1, 0),
		TCBEvaluationDataNumber: 17,
		MiscSelect:              make([]byte, 4), MiscSelectMask: []byte{0xff, 0xff, 0xff, 0xff},
		Attributes: attr, AttributesMask: mask,
		MRSigner:  QEMRSigner[:],
		ISVProdID: 2,
		TCBLevels: []intel.TCBLevel{
			{TCB: intel.TCB{ISVSVN: 4}, TCBDate: f.Now.AddDate(0, -2, 0), TCBStatus: intel.UpToDate},
		},
	}
}

// Collateral signs TCB info and QE identity (nil means the defaults) with CRLs valid around Now.
func (f *Fixture) Collateral(ti *intel.TCBInfo, qe *intel.EnclaveIdentity, revokedPCK bool) (*intel.Collateral, error) {
	if ti == nil {
		ti = f.TCBInfo()
	}
	if qe == nil {
		qe = f.QEIdentity()
	}
	s := inteltest.CollateralSpec{TCBInfo: ti, QEIdentity: qe, ThisUpdate: f.Now.AddDate(0, 0, -1), NextUpdate: f.Now.AddDate(0, 1, 0)}
	if revokedPCK {
		s.RevokedPCKs = append(s.RevokedPCKs, f.PCK.SerialNumber)
	}
	return f.PKI.Collateral(s)
}

// RecoveryAdvisory is the advisory of the TCB recovery that Recovered publishes.
const RecoveryAdvisory = "INTEL-SA-00099"

// Recovered is the fixture's collateral after an Intel TCB recovery: TCB info and QE identity
// with tcbEvaluationDataNumber 18, in which the fixture's platform (SGX components 5) is
// OutOfDate with advisory RecoveryAdvisory and UpToDate needs components 6. revokedPCK also
// revokes the fixture's PCK.
func (f *Fixture) Recovered(revokedPCK bool) (*intel.Collateral, error) {
	ti := f.TCBInfo()
	ti.TCBEvaluationDataNumber = 18
	top := ti.TCBLevels[0]
	top.TCB.SGXTCBComponents = all(6)
	was := ti.TCBLevels[0]
	was.TCBStatus, was.AdvisoryIDs = intel.OutOfDate, []string{RecoveryAdvisory}
	ti.TCBLevels = append([]intel.TCBLevel{top, was}, ti.TCBLevels[1:]...)
	qe := f.QEIdentity()
	qe.TCBEvaluationDataNumber = 18
	return f.Collateral(ti, qe, revokedPCK)
}
