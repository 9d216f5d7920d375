package intel

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// MaxCRL bounds a CRL; Intel's PCK CRLs are a few KiB to a few hundred KiB.
const MaxCRL = 8 << 20

// CRL is a revocation list whose signature verified under Issuer.
type CRL struct {
	List    *x509.RevocationList
	Issuer  *x509.Certificate
	revoked map[string]struct{}
}

// DecodeCRL accepts a CRL as DER, PEM or hex-encoded DER (PCS and PCCS versions differ in
// which they serve) and returns its DER bytes.
func DecodeCRL(b []byte) ([]byte, error) {
	if len(b) > MaxCRL {
		return nil, fmt.Errorf("CRL is %d bytes, limit %d", len(b), MaxCRL)
	}
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == 0x30 {
		return b, nil
	}
	if blk, _ := pem.Decode(t); blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("CRL PEM block is %q, want X509 CRL", blk.Type)
		}
		return blk.Bytes, nil
	}
	d, err := hex.DecodeString(string(t))
	if err != nil || len(d) == 0 || d[0] != 0x30 {
		return nil, errors.New("CRL is neither DER, PEM nor hex-encoded DER")
	}
	return d, nil
}

// VerifyCRL parses der, checks its signature under issuer and that t lies in
// [thisUpdate, nextUpdate].
func VerifyCRL(der []byte, issuer *x509.Certificate, t time.Time) (*CRL, error) {
	l, err := parseCRL(der)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(l.RawIssuer, issuer.RawSubject) {
		return nil, fmt.Errorf("CRL is issued by %q, not by %q", l.Issuer.CommonName, issuer.Subject.CommonName)
	}
	if err := l.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("CRL signature does not verify under %q: %w", issuer.Subject.CommonName, err)
	}
	if err := window("CRL", l.ThisUpdate, l.NextUpdate, t); err != nil {
		return nil, err
	}
	c := &CRL{List: l, Issuer: issuer, revoked: make(map[string]struct{}, len(l.RevokedCertificateEntries))}
	for _, e := range l.RevokedCertificateEntries {
		c.revoked[string(e.SerialNumber.Bytes())] = struct{}{}
	}
	return c, nil
}

// Revoked reports whether cert is on the list. cert must be issued by the CRL's issuer.
func (c *CRL) Revoked(cert *x509.Certificate) (bool, error) {
	if !bytes.Equal(cert.RawIssuer, c.Issuer.RawSubject) {
		return false, fmt.Errorf("CRL of %q cannot revoke a certificate issued by %q", c.Issuer.Subject.CommonName, cert.Issuer.CommonName)
	}
	_, r := c.revoked[string(cert.SerialNumber.Bytes())]
	return r, nil
}

// RevokedSerial reports whether a serial number is on the list.
func (c *CRL) RevokedSerial(s *big.Int) bool {
	_, r := c.revoked[string(s.Bytes())]
	return r
}

func window(what string, from, until, t time.Time) error {
	if until.IsZero() {
		return fmt.Errorf("%s has no nextUpdate", what)
	}
	if t.Before(from) {
		return fmt.Errorf("%s is not valid before %s (verification time %s)", what, from.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
	}
	if t.After(until) {
		return fmt.Errorf("%s expired at %s (verification time %s)", what, until.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
	}
	return nil
}

// parseCRL decodes (DecodeCRL) and parses a CRL without verifying it.
func parseCRL(b []byte) (*x509.RevocationList, error) {
	der, err := DecodeCRL(b)
	if err != nil {
		return nil, err
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("CRL does not parse: %w", err)
	}
	return l, nil
}
