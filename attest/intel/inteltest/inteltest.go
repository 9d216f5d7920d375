// Package inteltest builds a private Intel-shaped PKI for tests: a root CA, a PCK Platform CA,
// PCK certificates with SGX extensions, a TCB signing certificate, CRLs, and signed TCB info and
// QE identity bodies. Nothing it makes is trusted by default: verifiers must be told to trust
// Root explicitly.
package inteltest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/medicus-cloud/trust/attest/intel"
)

// PKI is a test hierarchy shaped like Intel's.
type PKI struct {
	Root, PCKCA, TCBSigning          *x509.Certificate
	RootKey, PCKCAKey, TCBSigningKey *ecdsa.PrivateKey
	NotBefore, NotAfter              time.Time
	serial                           int64
}

// New makes a hierarchy valid from notBefore to notAfter.
func New(notBefore, notAfter time.Time) (*PKI, error) {
	p := &PKI{NotBefore: notBefore, NotAfter: notAfter, serial: 1}
	var err error
	if p.Root, p.RootKey, err = p.issue(nil, nil, "Intel SGX Root CA", true, nil); err != nil {
		return nil, err
	}
	if p.PCKCA, p.PCKCAKey, err = p.issue(p.Root, p.RootKey, "Intel SGX PCK Platform CA", true, nil); err != nil {
		return nil, err
	}
	if p.TCBSigning, p.TCBSigningKey, err = p.issue(p.Root, p.RootKey, "Intel SGX TCB Signing", false, nil); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *PKI) issue(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string, ca bool, exts []pkix.Extension) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(p.serial),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Intel Corporation"}, Locality: []string{"Santa Clara"}, Province: []string{"CA"}, Country: []string{"US"}},
		NotBefore:             p.NotBefore,
		NotAfter:              p.NotAfter,
		BasicConstraintsValid: true,
		IsCA:                  ca,
		ExtraExtensions:       exts,
		// Intel's certificates carry these; go-tdx-guest counts the PCK's extensions.
		SubjectKeyId:          ski(&key.PublicKey),
		CRLDistributionPoints: []string{"https://example.invalid/" + cn + ".crl"},
	}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

func ski(pub *ecdsa.PublicKey) []byte {
	b, err := pub.Bytes()
	if err != nil {
		panic(err) // a generated P-256 key always encodes
	}
	h := sha256.Sum256(b)
	return h[:20]
}

// PCKSpec is what a PCK certificate says about its platform.
type PCKSpec struct {
	FMSPC         [6]byte
	PCEID         [2]byte
	TCBComponents [16]uint8
	PCESVN        uint16
	CPUSVN        [16]byte
	SMT           *bool
}

type kv struct {
	ID    asn1.ObjectIdentifier
	Value any
}

func oid(tail ...int) asn1.ObjectIdentifier {
	return append(append(asn1.ObjectIdentifier{}, intel.OIDSGXExtensions...), tail...)
}

// SGXExtension encodes the SGX extensions of a PCK certificate.
func SGXExtension(s PCKSpec) (pkix.Extension, error) {
	var tcb []kv
	for i, v := range s.TCBComponents {
		tcb = append(tcb, kv{oid(2, i+1), int(v)})
	}
	tcb = append(tcb, kv{oid(2, 17), int(s.PCESVN)}, kv{oid(2, 18), s.CPUSVN[:]})
	items := []kv{
		{oid(1), make([]byte, 16)},
		{oid(2), tcb},
		{oid(3), s.PCEID[:]},
		{oid(4), s.FMSPC[:]},
		{oid(5), asn1.Enumerated(0)},
	}
	if s.SMT != nil {
		items = append(items, kv{oid(7), []kv{{oid(7, 1), false}, {oid(7, 2), false}, {oid(7, 3), *s.SMT}}})
	}
	b, err := asn1.Marshal(items)
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: intel.OIDSGXExtensions, Value: b}, nil
}

// NewPCK issues a PCK certificate under the PCK CA.
func (p *PKI) NewPCK(s PCKSpec) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	ext, err := SGXExtension(s)
	if err != nil {
		return nil, nil, err
	}
	return p.issue(p.PCKCA, p.PCKCAKey, "Intel SGX PCK Certificate", false, []pkix.Extension{ext})
}

// ChainPEM encodes certificates as a PEM chain, in order.
func ChainPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// PCKChain is the chain a quote carries: PCK, PCK CA, root.
func (p *PKI) PCKChain(pck *x509.Certificate) []byte { return ChainPEM(pck, p.PCKCA, p.Root) }

// SignRaw signs SHA-256(msg) and returns r||s.
func SignRaw(key *ecdsa.PrivateKey, msg []byte) []byte {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// SignedBody wraps a JSON object the way PCS does, {"<name>":obj,"signature":hex}, signed by the
// TCB signing key.
func (p *PKI) SignedBody(name string, obj any) ([]byte, error) {
	inner, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	sig := SignRaw(p.TCBSigningKey, inner)
	return []byte(fmt.Sprintf(`{"%s":%s,"signature":"%s"}`, name, inner, hex.EncodeToString(sig))), nil
}

// CRL makes a CRL by issuer over the serials, valid from thisUpdate to nextUpdate.
func CRL(issuer *x509.Certificate, key *ecdsa.PrivateKey, thisUpdate, nextUpdate time.Time, revoked ...*big.Int) ([]byte, error) {
	var entries []x509.RevocationListEntry
	for _, s := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: thisUpdate})
	}
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(1),
		ThisUpdate:                thisUpdate,
		NextUpdate:                nextUpdate,
		RevokedCertificateEntries: entries,
	}, issuer, key)
}

// CollateralSpec describes collateral to make.
type CollateralSpec struct {
	TCBInfo    any // marshalled as the "tcbInfo" member
	QEIdentity any // marshalled as the "enclaveIdentity" member
	// CRL validity; zero means the PKI's validity.
	ThisUpdate, NextUpdate time.Time
	RevokedPCKs            []*big.Int
	RevokedByRoot          []*big.Int
}

// Collateral makes a complete, signed collateral set.
func (p *PKI) Collateral(s CollateralSpec) (*intel.Collateral, error) {
	if s.ThisUpdate.IsZero() {
		s.ThisUpdate = p.NotBefore
	}
	if s.NextUpdate.IsZero() {
		s.NextUpdate = p.NotAfter
	}
	c := &intel.Collateral{
		TCBInfoChain:    ChainPEM(p.TCBSigning, p.Root),
		QEIdentityChain: ChainPEM(p.TCBSigning, p.Root),
		PCKCRLChain:     ChainPEM(p.PCKCA, p.Root),
	}
	var err error
	if c.TCBInfo, err = p.SignedBody("tcbInfo", s.TCBInfo); err != nil {
		return nil, err
	}
	if c.QEIdentity, err = p.SignedBody("enclaveIdentity", s.QEIdentity); err != nil {
		return nil, err
	}
	if c.PCKCRL, err = CRL(p.PCKCA, p.PCKCAKey, s.ThisUpdate, s.NextUpdate, s.RevokedPCKs...); err != nil {
		return nil, err
	}
	if c.RootCRL, err = CRL(p.Root, p.RootKey, s.ThisUpdate, s.NextUpdate, s.RevokedByRoot...); err != nil {
		return nil, err
	}
	return c, nil
}
