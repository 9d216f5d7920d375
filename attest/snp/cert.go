package snp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/google/go-sev-guest/abi"

	"github.com/medicus-cloud/trust/attest"
)

// AMD's VCEK/VLEK extension arc, 1.3.6.1.4.1.3704.1 (AMD KDS specification).
var (
	oidStructVersion = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 1}
	oidProductName   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 2}
	oidBlSPL         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 1}
	oidTeeSPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 2}
	oidSnpSPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 3}
	oidUcodeSPL      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 8}
	oidFmcSPL        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 9}
	oidHWID          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 4}
	oidCSPID         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 5}
)

// turinHWIDSize is the length of the hwID of Turin VCEKs (and of the meaningful prefix of a Turin
// CHIP_ID); Milan and Genoa use all 64 bytes.
const turinHWIDSize = 8

// certExtensions are the AMD extensions of a VCEK or VLEK certificate.
type certExtensions struct {
	productName string // "Milan-B0", "Genoa", ...
	tcb         TCB    // HasFMC when the certificate carries fmcSPL
	hwid        []byte // VCEK only
	cspID       string // VLEK only
}

// parseEndorsement parses a VCEK or VLEK certificate (DER or PEM) and its AMD extensions, checking
// what does not depend on the chain: an ECDSA P-384 key, the subject name and the extensions the
// signer kind requires.
func parseEndorsement(field string, b []byte, signer abi.ReportSigner) (*x509.Certificate, *certExtensions, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, nil, attest.Malformed(field, "PEM block %q, want CERTIFICATE", blk.Type)
		}
		b = blk.Bytes
	}
	cert, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, nil, attest.Malformed(field, "%v", err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, nil, attest.NotAuthentic(field, fmt.Errorf("key is not ECDSA P-384"))
	}
	want := "SEV-VCEK"
	if signer == abi.VlekReportSigner {
		want = "SEV-VLEK"
	}
	if cert.Subject.CommonName != want {
		return nil, nil, attest.NotAuthentic(field, fmt.Errorf("subject common name %q, want %q for a %v-signed report", cert.Subject.CommonName, want, signer))
	}
	ext, err := parseExtensions(cert)
	if err != nil {
		return nil, nil, attest.Malformed(field, "%v", err)
	}
	switch signer {
	case abi.VcekReportSigner:
		if len(ext.hwid) != abi.ChipIDSize && len(ext.hwid) != turinHWIDSize {
			return nil, nil, attest.NotAuthentic(field, fmt.Errorf("VCEK without a hwID extension"))
		}
		if ext.cspID != "" {
			return nil, nil, attest.NotAuthentic(field, fmt.Errorf("VCEK with a CSP_ID extension"))
		}
	case abi.VlekReportSigner:
		if ext.cspID == "" || ext.hwid != nil {
			return nil, nil, attest.NotAuthentic(field, fmt.Errorf("VLEK must carry CSP_ID and no hwID"))
		}
	}
	return cert, ext, nil
}

func parseExtensions(cert *x509.Certificate) (*certExtensions, error) {
	var out certExtensions
	seen := map[string]bool{}
	var haveBl, haveTee, haveSnp, haveUcode bool
	for _, e := range cert.Extensions {
		id := e.Id.String()
		if !strings.HasPrefix(id, "1.3.6.1.4.1.3704.1.") {
			continue
		}
		if seen[id] {
			return nil, fmt.Errorf("extension %s repeated", id)
		}
		seen[id] = true
		var err error
		switch {
		case e.Id.Equal(oidStructVersion):
			var v uint8
			err = asn1U8(e.Value, &v)
		case e.Id.Equal(oidProductName):
			err = asn1IA5(e.Value, &out.productName)
		case e.Id.Equal(oidBlSPL):
			err, haveBl = asn1U8(e.Value, &out.tcb.Bootloader), true
		case e.Id.Equal(oidTeeSPL):
			err, haveTee = asn1U8(e.Value, &out.tcb.TEE), true
		case e.Id.Equal(oidSnpSPL):
			err, haveSnp = asn1U8(e.Value, &out.tcb.SNP), true
		case e.Id.Equal(oidUcodeSPL):
			err, haveUcode = asn1U8(e.Value, &out.tcb.Microcode), true
		case e.Id.Equal(oidFmcSPL):
			err, out.tcb.HasFMC = asn1U8(e.Value, &out.tcb.FMC), true
		case e.Id.Equal(oidHWID):
			out.hwid, err = asn1Octets(e.Value)
		case e.Id.Equal(oidCSPID):
			err = asn1IA5(e.Value, &out.cspID)
			if err == nil && out.cspID == "" {
				err = fmt.Errorf("empty")
			}
		default:
			// Reserved SPL slots (3.4 to 3.7) and extensions AMD may add: not part of the check.
		}
		if err != nil {
			return nil, fmt.Errorf("extension %s: %v", id, err)
		}
	}
	if !haveBl || !haveTee || !haveSnp || !haveUcode {
		return nil, fmt.Errorf("missing TCB extensions (blSPL, teeSPL, snpSPL, ucodeSPL)")
	}
	return &out, nil
}

func asn1U8(b []byte, out *uint8) error {
	var i int
	rest, err := asn1.Unmarshal(b, &i)
	if err != nil {
		return err
	}
	if len(rest) != 0 || i < 0 || i > 255 {
		return fmt.Errorf("not a single INTEGER 0..255")
	}
	*out = uint8(i)
	return nil
}

func asn1IA5(b []byte, out *string) error {
	if len(b) == 0 || b[0] != asn1.TagIA5String {
		return fmt.Errorf("not an IA5String")
	}
	rest, err := asn1.UnmarshalWithParams(b, out, "ia5")
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("trailing bytes")
	}
	return nil
}

// asn1Octets reads the hwID: AMD's KDS writes the raw bytes without an OCTET STRING header; accept
// a proper OCTET STRING too.
func asn1Octets(b []byte) ([]byte, error) {
	if len(b) == abi.ChipIDSize || len(b) == turinHWIDSize {
		return b, nil
	}
	var o []byte
	rest, err := asn1.Unmarshal(b, &o)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 || (len(o) != abi.ChipIDSize && len(o) != turinHWIDSize) {
		return nil, fmt.Errorf("hwID is not %d or %d bytes", abi.ChipIDSize, turinHWIDSize)
	}
	return o, nil
}

// productOfCert guesses the product line of an endorsement certificate from its productName
// extension ("Milan-B0", "Genoa") or else its issuer ("SEV-Milan", "SEV-VLEK-Genoa"). The guess
// only picks which roots to verify against; the chain decides.
func productOfCert(cert *x509.Certificate, ext *certExtensions) string {
	for _, p := range []string{Milan, Genoa, Turin} {
		if ext.productName == p || strings.HasPrefix(ext.productName, p+"-") {
			return p
		}
	}
	cn := cert.Issuer.CommonName
	for _, p := range []string{Milan, Genoa, Turin} {
		if cn == "SEV-"+p || cn == "SEV-VLEK-"+p {
			return p
		}
	}
	return ""
}
