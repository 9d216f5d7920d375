package intel

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/medicus-cloud/trust/internal/atomicfile"
)

// The files of a collateral directory. The JSON files are PCS response bodies exactly as
// served (signature included); the chains are the issuer chains PCS returns URL-encoded in
// response headers, decoded to PEM.
const (
	FileTCBInfo         = "tcbinfo.json"
	FileTCBInfoChain    = "tcbinfo_chain.pem"
	FileQEIdentity      = "qeidentity.json"
	FileQEIdentityChain = "qeidentity_chain.pem"
	FilePCKCRL          = "pckcrl.der"
	FilePCKCRLChain     = "pckcrl_chain.pem"
	FileRootCRL         = "rootcrl.der"
)

// Files lists the collateral directory's files.
var Files = []string{FileTCBInfo, FileTCBInfoChain, FileQEIdentity, FileQEIdentityChain, FilePCKCRL, FilePCKCRLChain, FileRootCRL}

// maxFile bounds any collateral file.
const maxFile = MaxCRL

// Collateral is the raw endorsement set for one FMSPC and PCK CA.
type Collateral struct {
	TCBInfo, TCBInfoChain       []byte
	QEIdentity, QEIdentityChain []byte
	PCKCRL, PCKCRLChain         []byte
	RootCRL                     []byte
}

// FileError names the collateral file a failure is about.
type FileError struct {
	File string
	Err  error
}

func (e *FileError) Error() string { return e.File + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

func (c *Collateral) slot(name string) *[]byte {
	switch name {
	case FileTCBInfo:
		return &c.TCBInfo
	case FileTCBInfoChain:
		return &c.TCBInfoChain
	case FileQEIdentity:
		return &c.QEIdentity
	case FileQEIdentityChain:
		return &c.QEIdentityChain
	case FilePCKCRL:
		return &c.PCKCRL
	case FilePCKCRLChain:
		return &c.PCKCRLChain
	case FileRootCRL:
		return &c.RootCRL
	}
	return nil
}

// CollateralFromFiles builds collateral from file name to content. Every file is required and
// no other name is allowed: partial collateral is an error, never a silent "unknown".
func CollateralFromFiles(m map[string][]byte) (*Collateral, error) {
	c := &Collateral{}
	for name, b := range m {
		s := c.slot(name)
		if s == nil {
			return nil, &FileError{name, errors.New("not a collateral file")}
		}
		if len(b) > maxFile {
			return nil, &FileError{name, fmt.Errorf("%d bytes, limit %d", len(b), maxFile)}
		}
		*s = b
	}
	for _, name := range Files {
		if len(*c.slot(name)) == 0 {
			return nil, &FileError{name, errors.New("missing or empty")}
		}
	}
	return c, nil
}

// ReadDir reads a collateral directory written by Fetch or WriteDir.
func ReadDir(dir string) (*Collateral, error) {
	m := make(map[string][]byte, len(Files))
	for _, name := range Files {
		b, err := readLimited(filepath.Join(dir, name))
		if err != nil {
			return nil, &FileError{name, err}
		}
		m[name] = b
	}
	return CollateralFromFiles(m)
}

func readLimited(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxFile {
		return nil, fmt.Errorf("%d bytes, limit %d", fi.Size(), maxFile)
	}
	return os.ReadFile(path)
}

// Map returns the collateral as file name to content.
func (c *Collateral) Map() map[string][]byte {
	m := make(map[string][]byte, len(Files))
	for _, name := range Files {
		m[name] = *c.slot(name)
	}
	return m
}

// WriteDir writes the collateral files into dir (created if needed), each through a temporary
// file and a rename so that a reader never sees half a file.
func (c *Collateral) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range Files {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), *c.slot(name), 0o644); err != nil {
			return &FileError{name, err}
		}
	}
	return nil
}

// Fingerprint identifies the collateral's bytes.
func (c *Collateral) Fingerprint() [32]byte {
	h := sha256.New()
	for _, name := range Files {
		b := *c.slot(name)
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Verified is collateral whose signatures, chains and CRLs checked out.
type Verified struct {
	TCBInfo    *TCBInfo
	QEIdentity *EnclaveIdentity
	PCKCRL     *CRL
	RootCRL    *CRL
	// NotBefore and NotAfter bound when every part is valid: the latest issue date and the
	// earliest nextUpdate or certificate expiry.
	NotBefore, NotAfter time.Time
	// parts remembers each part's own window, to name the file that is out of date.
	parts []part
	// raw is what was verified, for keeping a set a TCB recovery replaced (previous.go).
	raw *Collateral
}

type part struct {
	file        string
	from, until time.Time
}

// ValidAt names the collateral file that is not valid at t.
func (v *Verified) ValidAt(t time.Time) error {
	for _, p := range v.parts {
		if err := window("collateral", p.from, p.until, t); err != nil {
			return &FileError{p.file, err}
		}
	}
	return nil
}

func (v *Verified) add(file string, from, until time.Time) {
	v.parts = append(v.parts, part{file, from, until})
	if v.NotBefore.IsZero() || from.After(v.NotBefore) {
		v.NotBefore = from
	}
	if v.NotAfter.IsZero() || until.Before(v.NotAfter) {
		v.NotAfter = until
	}
}

// collateralCache remembers verified collateral by fingerprint.
type collateralCache struct {
	m map[[32]byte]*Verified // guarded by Roots.mu
}

const maxCachedCollateral = 256

// VerifyCollateral checks every signature, chain and CRL of c at time t: the TCB info and QE
// identity are signed by Intel's TCB signing certificate, the PCK CRL by a PCK CA, the root CA
// CRL by the root, every chain goes to the root, no intermediate is revoked, and t lies in every
// validity window. Results are cached by fingerprint; a cached result is re-checked against t.
func (r *Roots) VerifyCollateral(c *Collateral, t time.Time) (*Verified, error) {
	key := c.Fingerprint()
	r.mu.Lock()
	v := r.coll.m[key]
	r.mu.Unlock()
	if v != nil {
		if err := v.ValidAt(t); err != nil {
			return nil, err
		}
		return v, nil
	}
	v, err := r.verifyCollateral(c, t)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.coll.m == nil || len(r.coll.m) >= maxCachedCollateral {
		r.coll.m = make(map[[32]byte]*Verified)
	}
	r.coll.m[key] = v
	r.mu.Unlock()
	return v, nil
}

func (r *Roots) verifyCollateral(c *Collateral, t time.Time) (*Verified, error) {
	v := &Verified{raw: c}
	root, err := VerifyCRL(c.RootCRL, r.root, t)
	if err != nil {
		return nil, &FileError{FileRootCRL, err}
	}
	v.RootCRL = root
	v.add(FileRootCRL, root.List.ThisUpdate, root.List.NextUpdate)

	signer := func(chainFile string, chainPEM []byte, wantCN string) (*Chain, error) {
		ch, err := r.VerifyPEM(chainPEM, t)
		if err != nil {
			return nil, &FileError{chainFile, err}
		}
		if err := checkSigner(ch.Leaf, wantCN); err != nil {
			return nil, &FileError{chainFile, err}
		}
		if err := notRevokedBelowRoot(ch, root); err != nil {
			return nil, &FileError{chainFile, err}
		}
		v.add(chainFile, ch.NotBefore, ch.NotAfter)
		return ch, nil
	}

	tch, err := signer(FileTCBInfoChain, c.TCBInfoChain, "Intel SGX TCB Signing")
	if err != nil {
		return nil, err
	}
	info, signed, sig, err := ParseTCBInfo(c.TCBInfo)
	if err != nil {
		return nil, &FileError{FileTCBInfo, err}
	}
	if err := VerifySignedJSON(tch.Leaf, signed, sig); err != nil {
		return nil, &FileError{FileTCBInfo, err}
	}
	if err := window("TCB info", info.IssueDate, info.NextUpdate, t); err != nil {
		return nil, &FileError{FileTCBInfo, err}
	}
	v.TCBInfo = info
	v.add(FileTCBInfo, info.IssueDate, info.NextUpdate)

	qch, err := signer(FileQEIdentityChain, c.QEIdentityChain, "Intel SGX TCB Signing")
	if err != nil {
		return nil, err
	}
	qe, signed, sig, err := ParseEnclaveIdentity(c.QEIdentity)
	if err != nil {
		return nil, &FileError{FileQEIdentity, err}
	}
	if err := VerifySignedJSON(qch.Leaf, signed, sig); err != nil {
		return nil, &FileError{FileQEIdentity, err}
	}
	if err := window("QE identity", qe.IssueDate, qe.NextUpdate, t); err != nil {
		return nil, &FileError{FileQEIdentity, err}
	}
	v.QEIdentity = qe
	v.add(FileQEIdentity, qe.IssueDate, qe.NextUpdate)

	pch, err := r.VerifyPEM(c.PCKCRLChain, t)
	if err != nil {
		return nil, &FileError{FilePCKCRLChain, err}
	}
	if _, err := caKind(pch.Leaf.Subject.CommonName); err != nil {
		return nil, &FileError{FilePCKCRLChain, fmt.Errorf("CRL signer %q is not an Intel SGX PCK CA", pch.Leaf.Subject.CommonName)}
	}
	if err := notRevokedBelowRoot(pch, root); err != nil {
		return nil, &FileError{FilePCKCRLChain, err}
	}
	v.add(FilePCKCRLChain, pch.NotBefore, pch.NotAfter)
	pcrl, err := VerifyCRL(c.PCKCRL, pch.Leaf, t)
	if err != nil {
		return nil, &FileError{FilePCKCRL, err}
	}
	v.PCKCRL = pcrl
	v.add(FilePCKCRL, pcrl.List.ThisUpdate, pcrl.List.NextUpdate)
	return v, nil
}

// notRevokedBelowRoot checks every certificate the root issued in ch against the root CA CRL.
func notRevokedBelowRoot(ch *Chain, root *CRL) error {
	all := append([]*x509.Certificate{ch.Leaf}, ch.Issuers...)
	for _, c := range all {
		if bytes.Equal(c.RawIssuer, root.Issuer.RawSubject) && !c.Equal(root.Issuer) && root.RevokedSerial(c.SerialNumber) {
			return fmt.Errorf("certificate %q is revoked by the root CA CRL", c.Subject.CommonName)
		}
	}
	return nil
}

// CheckPCK checks a verified PCK chain against the CRLs: the PCK CA must be the CRL's issuer
// (same name and key), the PCK must not be on its CRL, and the PCK CA must not be on the root CA
// CRL.
func (v *Verified) CheckPCK(ch *Chain) error {
	ca := ch.Issuer()
	crlCA := v.PCKCRL.Issuer
	if !bytes.Equal(ca.RawSubject, crlCA.RawSubject) || !bytes.Equal(ca.RawSubjectPublicKeyInfo, crlCA.RawSubjectPublicKeyInfo) {
		return &FileError{FilePCKCRL, fmt.Errorf("CRL is from %q, but the PCK was issued by %q", crlCA.Subject.CommonName, ca.Subject.CommonName)}
	}
	if v.PCKCRL.RevokedSerial(ch.Leaf.SerialNumber) {
		return fmt.Errorf("PCK certificate (serial %x) is revoked by the %s CRL", ch.Leaf.SerialNumber, ca.Subject.CommonName)
	}
	if err := notRevokedBelowRoot(ch, v.RootCRL); err != nil {
		return err
	}
	return nil
}
