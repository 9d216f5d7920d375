package intel

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// OIDSGXExtensions is the PCK certificate extension that carries the platform's SGX identity and
// the TCB the certificate was issued for.
var OIDSGXExtensions = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}

var (
	oidPPID       = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	oidTCB        = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCEID      = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC      = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
	oidSGXType    = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 5}
	oidPlatInstID = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 6}
	oidConfig     = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 7}
	oidSMTEnabled = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 7, 3}
)

// PCKExtensions is what a PCK certificate's SGX extensions say about the platform.
type PCKExtensions struct {
	PPID []byte
	// TCBComponents are SGXTCBComp01SVN..SGXTCBComp16SVN.
	TCBComponents [16]uint8
	PCESVN        uint16
	CPUSVN        [16]byte
	PCEID         [2]byte
	FMSPC         [6]byte
	// SGXType is 0 for Standard, 1 for Scalable, 2 for Scalable with integrity.
	SGXType int
	// SMTEnabled is the platform configuration's SMT flag; nil when the certificate (a
	// Processor CA one) does not carry it.
	SMTEnabled *bool
}

// FMSPCHex is the FMSPC in lowercase hex.
func (p *PCKExtensions) FMSPCHex() string { return hex.EncodeToString(p.FMSPC[:]) }

// PCEIDHex is the PCE ID in lowercase hex.
func (p *PCKExtensions) PCEIDHex() string { return hex.EncodeToString(p.PCEID[:]) }

type sgxExt struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue
}

// ParsePCKExtensions reads the SGX extensions (OID 1.2.840.113741.1.13.1) of a PCK certificate.
// Every mandatory field must be present exactly once with its specified size.
func ParsePCKExtensions(cert *x509.Certificate) (*PCKExtensions, error) {
	var raw []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDSGXExtensions) {
			if raw != nil {
				return nil, errors.New("pck: SGX extensions appear twice")
			}
			raw = e.Value
		}
	}
	if raw == nil {
		return nil, errors.New("pck: no SGX extensions (OID 1.2.840.113741.1.13.1): not a PCK certificate")
	}
	var exts []sgxExt
	if rest, err := asn1.Unmarshal(raw, &exts); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("pck: SGX extensions do not parse: %v", orTrailing(err))
	}
	p := &PCKExtensions{}
	seen := map[string]bool{}
	for _, e := range exts {
		key := e.ID.String()
		if seen[key] {
			return nil, fmt.Errorf("pck: SGX extension %s appears twice", key)
		}
		seen[key] = true
		var err error
		switch {
		case e.ID.Equal(oidPPID):
			p.PPID, err = octets(e.Value, 16, "ppid")
		case e.ID.Equal(oidTCB):
			err = p.parseTCB(e.Value)
		case e.ID.Equal(oidPCEID):
			var b []byte
			if b, err = octets(e.Value, 2, "pceid"); err == nil {
				copy(p.PCEID[:], b)
			}
		case e.ID.Equal(oidFMSPC):
			var b []byte
			if b, err = octets(e.Value, 6, "fmspc"); err == nil {
				copy(p.FMSPC[:], b)
			}
		case e.ID.Equal(oidSGXType):
			var v asn1.Enumerated
			if _, err = asn1.Unmarshal(e.Value.FullBytes, &v); err != nil {
				err = fmt.Errorf("pck: sgx type: %v", err)
			}
			p.SGXType = int(v)
		case e.ID.Equal(oidConfig):
			p.SMTEnabled, err = parseConfig(e.Value)
		case e.ID.Equal(oidPlatInstID):
			// The platform instance ID identifies a multi-package platform; nothing here uses it.
		}
		if err != nil {
			return nil, err
		}
	}
	for _, need := range []asn1.ObjectIdentifier{oidPPID, oidTCB, oidPCEID, oidFMSPC, oidSGXType} {
		if !seen[need.String()] {
			return nil, fmt.Errorf("pck: SGX extension %s is missing", need)
		}
	}
	return p, nil
}

func (p *PCKExtensions) parseTCB(v asn1.RawValue) error {
	var comps []sgxExt
	if rest, err := asn1.Unmarshal(v.FullBytes, &comps); err != nil || len(rest) != 0 {
		return fmt.Errorf("pck: tcb does not parse: %v", orTrailing(err))
	}
	var have [19]bool
	for _, c := range comps {
		if len(c.ID) != len(oidTCB)+1 || !c.ID[:len(oidTCB)].Equal(oidTCB) {
			return fmt.Errorf("pck: unexpected tcb component %s", c.ID)
		}
		n := c.ID[len(oidTCB)]
		if n < 1 || n > 18 || have[n] {
			return fmt.Errorf("pck: tcb component %s unknown or repeated", c.ID)
		}
		have[n] = true
		switch {
		case n == 18:
			b, err := octets(c.Value, 16, "cpusvn")
			if err != nil {
				return err
			}
			copy(p.CPUSVN[:], b)
		default:
			var x int
			if rest, err := asn1.Unmarshal(c.Value.FullBytes, &x); err != nil || len(rest) != 0 {
				return fmt.Errorf("pck: tcb component %d: %v", n, orTrailing(err))
			}
			limit := 255
			if n == 17 {
				limit = 65535
			}
			if x < 0 || x > limit {
				return fmt.Errorf("pck: tcb component %d = %d out of range", n, x)
			}
			if n == 17 {
				p.PCESVN = uint16(x)
			} else {
				p.TCBComponents[n-1] = uint8(x)
			}
		}
	}
	for n := 1; n <= 18; n++ {
		if !have[n] {
			return fmt.Errorf("pck: tcb component %d is missing", n)
		}
	}
	return nil
}

func parseConfig(v asn1.RawValue) (*bool, error) {
	var items []sgxExt
	if rest, err := asn1.Unmarshal(v.FullBytes, &items); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("pck: configuration does not parse: %v", orTrailing(err))
	}
	for _, it := range items {
		if it.ID.Equal(oidSMTEnabled) {
			var b bool
			if _, err := asn1.Unmarshal(it.Value.FullBytes, &b); err != nil {
				return nil, fmt.Errorf("pck: configuration smtEnabled: %v", err)
			}
			return &b, nil
		}
	}
	return nil, nil
}

func octets(v asn1.RawValue, n int, name string) ([]byte, error) {
	var b []byte
	if rest, err := asn1.Unmarshal(v.FullBytes, &b); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("pck: %s: %v", name, orTrailing(err))
	}
	if len(b) != n {
		return nil, fmt.Errorf("pck: %s is %d bytes, want %d", name, len(b), n)
	}
	return b, nil
}

func orTrailing(err error) error {
	if err == nil {
		return errors.New("trailing data")
	}
	return err
}

// PCK CA kinds, as PCS spells them in the ca= query parameter.
const (
	CAPlatform  = "platform"
	CAProcessor = "processor"
)

// PCKCAKind tells which PCK CA issued a PCK certificate, from its issuer common name.
func PCKCAKind(pck *x509.Certificate) (string, error) { return caKind(pck.Issuer.CommonName) }

func caKind(cn string) (string, error) {
	switch strings.TrimSpace(cn) {
	case "Intel SGX PCK Platform CA":
		return CAPlatform, nil
	case "Intel SGX PCK Processor CA":
		return CAProcessor, nil
	}
	return "", fmt.Errorf("%q is not an Intel SGX PCK CA", cn)
}
