package intel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// Status is a TCB status as Intel's TCB info and enclave identities spell it.
type Status string

// The statuses of Intel's TCB info v3 and enclave identity v2, and Unknown for "no collateral".
const (
	UpToDate                          Status = "UpToDate"
	SWHardeningNeeded                 Status = "SWHardeningNeeded"
	ConfigurationNeeded               Status = "ConfigurationNeeded"
	ConfigurationAndSWHardeningNeeded Status = "ConfigurationAndSWHardeningNeeded"
	OutOfDate                         Status = "OutOfDate"
	OutOfDateConfigurationNeeded      Status = "OutOfDateConfigurationNeeded"
	Revoked                           Status = "Revoked"
	// Unknown means no collateral was available to appraise the TCB; the evidence is still
	// authentic.
	Unknown Status = "unknown"
	// TDRelaunchAdvised and TDRelaunchAdvisedConfigurationNeeded are derived, never in TCB
	// info: a TD 1.5 launched on an out-of-date TDX module that has since been updated in place
	// to the latest one. Relaunching the TD brings it up to date.
	TDRelaunchAdvised                    Status = "TDRelaunchAdvised"
	TDRelaunchAdvisedConfigurationNeeded Status = "TDRelaunchAdvisedConfigurationNeeded"
)

func (s Status) known() bool {
	switch s {
	case UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded,
		OutOfDate, OutOfDateConfigurationNeeded, Revoked:
		return true
	}
	return false
}

// OutOfDate reports whether the status says the platform needs a TCB recovery.
func (s Status) OutOfDate() bool { return s == OutOfDate || s == OutOfDateConfigurationNeeded }

// RelaunchAdvised reports whether the status says the TD must be relaunched to be current.
func (s Status) RelaunchAdvised() bool {
	return s == TDRelaunchAdvised || s == TDRelaunchAdvisedConfigurationNeeded
}

func (s Status) configurationNeeded() bool {
	switch s {
	case ConfigurationNeeded, OutOfDateConfigurationNeeded, ConfigurationAndSWHardeningNeeded, TDRelaunchAdvisedConfigurationNeeded:
		return true
	}
	return false
}

// Relaunch applies Intel's TD relaunch check to a TD 1.5 report: when the TD's TCB is out of
// date only because the TDX module it was launched on was, the QE is current, the SGX part of
// the platform is not out of date, and the module now running (TEE_TCB_SVN_2) is at the latest
// level of its identity, the status becomes TDRelaunchAdvised (or
// TDRelaunchAdvisedConfigurationNeeded). Otherwise tdx is returned unchanged. sgx is the status
// of the first level the PCK's SGX TCB meets; tdx the TD's status after folding in the module's;
// module the module's own status (UpToDate for major version 0); qe the QE's.
func (t *TCBInfo) Relaunch(teeTCBSVN2 []byte, sgx, tdx, module, qe Status) Status {
	if len(teeTCBSVN2) != 16 || len(t.TCBLevels) == 0 || len(t.TCBLevels[0].TCB.TDXTCBComponents) != 16 {
		return tdx
	}
	if qe == OutOfDate || qe == Revoked {
		return tdx
	}
	switch sgx {
	case UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded:
	default:
		return tdx
	}
	if !tdx.OutOfDate() || module != OutOfDate {
		return tdx
	}
	latest := t.TCBLevels[0].TCB.TDXTCBComponents
	moduleSVN := latest[0].SVN
	if teeTCBSVN2[1] != 0 {
		want := fmt.Sprintf("TDX_%02X", teeTCBSVN2[1])
		i := slices.IndexFunc(t.TDXModuleIdentities, func(m TDXModuleIdentity) bool { return strings.EqualFold(m.ID, want) })
		if i < 0 || len(t.TDXModuleIdentities[i].TCBLevels) == 0 {
			return tdx
		}
		moduleSVN = t.TDXModuleIdentities[i].TCBLevels[0].TCB.ISVSVN
	}
	if int(teeTCBSVN2[0]) < moduleSVN || int(teeTCBSVN2[2]) < latest[2].SVN {
		return tdx
	}
	if sgx.configurationNeeded() || tdx.configurationNeeded() {
		return TDRelaunchAdvisedConfigurationNeeded
	}
	return TDRelaunchAdvised
}

// Converge folds a component's status (the quoting enclave's, or the TDX module's) into the
// platform's, the way Intel's quote verification library does: a revoked component revokes
// the whole, an out-of-date component makes an otherwise current platform out of date.
func Converge(platform, component Status) Status {
	switch component {
	case Revoked:
		return Revoked
	case OutOfDate, OutOfDateConfigurationNeeded:
		switch platform {
		case UpToDate, SWHardeningNeeded:
			return OutOfDate
		case ConfigurationNeeded, ConfigurationAndSWHardeningNeeded:
			return OutOfDateConfigurationNeeded
		}
	}
	return platform
}

// EnclaveReportSize is the size of an SGX enclave report body (the QE report in a quote).
const EnclaveReportSize = 384

// EnclaveReport is an SGX report body, as it appears as the QE report of a DCAP quote.
type EnclaveReport struct {
	CPUSVN     [16]byte
	MiscSelect uint32
	Attributes [16]byte
	MRENCLAVE  [32]byte
	MRSIGNER   [32]byte
	ISVProdID  uint16
	ISVSVN     uint16
	ReportData [64]byte
}

// ParseEnclaveReport parses a 384-byte SGX report body.
func ParseEnclaveReport(b []byte) (*EnclaveReport, error) {
	if len(b) != EnclaveReportSize {
		return nil, fmt.Errorf("enclave report is %d bytes, want %d", len(b), EnclaveReportSize)
	}
	r := &EnclaveReport{MiscSelect: binary.LittleEndian.Uint32(b[16:20])}
	copy(r.CPUSVN[:], b[0:16])
	copy(r.Attributes[:], b[48:64])
	copy(r.MRENCLAVE[:], b[64:96])
	copy(r.MRSIGNER[:], b[128:160])
	r.ISVProdID = binary.LittleEndian.Uint16(b[256:258])
	r.ISVSVN = binary.LittleEndian.Uint16(b[258:260])
	copy(r.ReportData[:], b[320:384])
	return r, nil
}

// Bytes encodes the report body; reserved fields are zero.
func (r *EnclaveReport) Bytes() []byte {
	b := make([]byte, EnclaveReportSize)
	copy(b[0:16], r.CPUSVN[:])
	binary.LittleEndian.PutUint32(b[16:20], r.MiscSelect)
	copy(b[48:64], r.Attributes[:])
	copy(b[64:96], r.MRENCLAVE[:])
	copy(b[128:160], r.MRSIGNER[:])
	binary.LittleEndian.PutUint16(b[256:258], r.ISVProdID)
	binary.LittleEndian.PutUint16(b[258:260], r.ISVSVN)
	copy(b[320:384], r.ReportData[:])
	return b
}

// Match checks an enclave report against the identity (MRSIGNER, ISVPRODID, masked MISCSELECT
// and ATTRIBUTES) and returns the TCB level of its ISVSVN.
func (id *EnclaveIdentity) Match(r *EnclaveReport) (*TCBLevel, error) {
	if len(id.MiscSelect) != 4 || len(id.MiscSelectMask) != 4 || len(id.Attributes) != 16 || len(id.AttributesMask) != 16 {
		return nil, fmt.Errorf("%s identity: malformed miscselect or attributes", id.ID)
	}
	if !bytes.Equal(r.MRSIGNER[:], id.MRSigner) {
		return nil, fmt.Errorf("%s identity: MRSIGNER %x is not Intel's %x", id.ID, r.MRSIGNER, []byte(id.MRSigner))
	}
	if int(r.ISVProdID) != id.ISVProdID {
		return nil, fmt.Errorf("%s identity: ISVPRODID %d, want %d", id.ID, r.ISVProdID, id.ISVProdID)
	}
	mask := binary.LittleEndian.Uint32(id.MiscSelectMask)
	if r.MiscSelect&mask != binary.LittleEndian.Uint32(id.MiscSelect) {
		return nil, fmt.Errorf("%s identity: MISCSELECT %#x does not match %x under mask %x", id.ID, r.MiscSelect, []byte(id.MiscSelect), []byte(id.MiscSelectMask))
	}
	for i := range r.Attributes {
		if r.Attributes[i]&id.AttributesMask[i] != id.Attributes[i] {
			return nil, fmt.Errorf("%s identity: ATTRIBUTES %x do not match %x under mask %x", id.ID, r.Attributes, []byte(id.Attributes), []byte(id.AttributesMask))
		}
	}
	for i := range id.TCBLevels {
		if id.TCBLevels[i].TCB.ISVSVN <= int(r.ISVSVN) {
			return &id.TCBLevels[i], nil
		}
	}
	return nil, fmt.Errorf("%s identity: ISVSVN %d is below every TCB level", id.ID, r.ISVSVN)
}

// PlatformLevel finds the first TCB level (Intel sorts them newest first) that the platform
// meets: every SGX TCB component and the PCESVN of the PCK certificate at least the level's
// and, for TDX (teeTCBSVN non-nil), every TEE_TCB_SVN byte at least the level's
// tdxtcbcomponents (skipping the module's own SVN and version in bytes 0 and 1 when the module
// major version is not 0; those are appraised by TDXModuleLevel).
func (t *TCBInfo) PlatformLevel(pck *PCKExtensions, teeTCBSVN []byte) (*TCBLevel, error) {
	if teeTCBSVN != nil && len(teeTCBSVN) != 16 {
		return nil, fmt.Errorf("TEE_TCB_SVN is %d bytes, want 16", len(teeTCBSVN))
	}
levels:
	for i := range t.TCBLevels {
		l := &t.TCBLevels[i]
		if len(l.TCB.SGXTCBComponents) != 16 || (teeTCBSVN != nil && len(l.TCB.TDXTCBComponents) != 16) {
			return nil, fmt.Errorf("TCB info level %d lacks its 16 SGX or TDX components", i)
		}
		for j, c := range l.TCB.SGXTCBComponents {
			if int(pck.TCBComponents[j]) < c.SVN {
				continue levels
			}
		}
		if int(pck.PCESVN) < l.TCB.PCESVN {
			continue
		}
		if teeTCBSVN != nil {
			start := 0
			if teeTCBSVN[1] > 0 {
				start = 2
			}
			for j := start; j < 16; j++ {
				if int(teeTCBSVN[j]) < l.TCB.TDXTCBComponents[j].SVN {
					continue levels
				}
			}
		}
		return l, nil
	}
	return nil, fmt.Errorf("no TCB level of FMSPC %s matches the platform (TCB not supported by this TCB info)", t.FMSPC)
}

// TDXModuleLevel checks the TDX module's signer and attributes against the TCB info and, for
// modules of major version 1 and up, returns the TCB level of the module's identity
// "TDX_<major>" that its SVN meets. For major version 0 the level is nil: the module is
// appraised as part of the platform level.
func (t *TCBInfo) TDXModuleLevel(teeTCBSVN, mrSignerSeam, seamAttributes []byte) (*TCBLevel, error) {
	if len(teeTCBSVN) != 16 || len(seamAttributes) != 8 {
		return nil, fmt.Errorf("TEE_TCB_SVN or SEAMATTRIBUTES has the wrong size")
	}
	// Intel's quote verification requires SEAMATTRIBUTES zero whatever the mask says.
	if !bytes.Equal(seamAttributes, make([]byte, 8)) {
		return nil, fmt.Errorf("SEAMATTRIBUTES %x are not zero", seamAttributes)
	}
	if teeTCBSVN[1] == 0 {
		if t.TDXModule == nil {
			return nil, fmt.Errorf("TCB info has no tdxModule")
		}
		return nil, checkModule("tdxModule", t.TDXModule, mrSignerSeam, seamAttributes)
	}
	want := fmt.Sprintf("TDX_%02X", teeTCBSVN[1])
	i := slices.IndexFunc(t.TDXModuleIdentities, func(m TDXModuleIdentity) bool { return strings.EqualFold(m.ID, want) })
	if i < 0 {
		return nil, fmt.Errorf("TCB info has no TDX module identity %s", want)
	}
	m := &t.TDXModuleIdentities[i]
	if err := checkModule(want, &m.TDXModule, mrSignerSeam, seamAttributes); err != nil {
		return nil, err
	}
	for j := range m.TCBLevels {
		if m.TCBLevels[j].TCB.ISVSVN <= int(teeTCBSVN[0]) {
			return &m.TCBLevels[j], nil
		}
	}
	return nil, fmt.Errorf("TDX module %s SVN %d is below every TCB level", want, teeTCBSVN[0])
}

func checkModule(name string, m *TDXModule, mrSignerSeam, seamAttributes []byte) error {
	if !bytes.Equal(m.MRSigner, mrSignerSeam) {
		return fmt.Errorf("%s: MRSIGNERSEAM %x is not %x", name, mrSignerSeam, []byte(m.MRSigner))
	}
	if len(m.AttributesMask) != len(seamAttributes) || len(m.Attributes) != len(seamAttributes) {
		return fmt.Errorf("%s: attributes and mask must be %d bytes", name, len(seamAttributes))
	}
	for i := range seamAttributes {
		if seamAttributes[i]&m.AttributesMask[i] != m.Attributes[i] {
			return fmt.Errorf("%s: SEAMATTRIBUTES %x do not match %x under mask %x", name, seamAttributes, []byte(m.Attributes), []byte(m.AttributesMask))
		}
	}
	return nil
}

// Advisories merges advisory IDs of levels, sorted and without repeats.
func Advisories(levels ...*TCBLevel) []string {
	var out []string
	for _, l := range levels {
		if l != nil {
			out = append(out, l.AdvisoryIDs...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
