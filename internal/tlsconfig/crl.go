package tlsconfig

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// Errors of CheckRevocation. Authorizer answers ErrRevoked with Unauthenticated and ErrNoCRL
// with Unavailable: the first is the caller's credential, the second the server's state.
var (
	ErrRevoked = errors.New("client certificate revoked")
	ErrNoCRL   = errors.New("no current CRL for the client certificate's issuer; client certificates are refused")
)

// caID identifies a client CA by its whole certificate, not its name: two CAs may share a
// subject, never a certificate.
type caID [sha256.Size]byte

func idOf(ca *x509.Certificate) caID { return sha256.Sum256(ca.Raw) }

// revocations is the admin CAs' CRLs, checked and indexed by issuer and serial: a serial number
// is unique only within its issuer, so with several admin CAs a serial alone would revoke
// another CA's certificate and miss the one meant.
type revocations struct {
	revoked    map[caID]map[string]bool // issuer → hex serial numbers
	nextUpdate map[caID]time.Time       // zero: no NextUpdate given
	stamp      stamp
}

// count is the number of revoked certificates over all CRLs, for logs.
func (r *revocations) count() int {
	n := 0
	for _, s := range r.revoked {
		n += len(s)
	}
	return n
}

// parseCAs returns the certificates of a PEM bundle.
func parseCAs(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificates in it")
	}
	return out, nil
}

// crlBlobs returns the DER CRLs of a file: one DER CRL, or one or more PEM "X509 CRL" blocks
// (one per admin CA).
func crlBlobs(name string, b []byte) ([][]byte, error) {
	blk, rest := pem.Decode(b)
	if blk == nil {
		return [][]byte{b}, nil
	}
	var out [][]byte
	for blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("tls: client CRL %s: PEM block %q, want X509 CRL", name, blk.Type)
		}
		out = append(out, blk.Bytes)
		blk, rest = pem.Decode(rest)
	}
	return out, nil
}

// loadCRL reads the CRL file (PEM or DER) and accepts it only if each CRL in it is signed by a
// client CA, current, and the only one of its CA.
func (s *Server) loadCRL() (*revocations, error) {
	name := s.o.ClientCRLFile
	st, err := fileStamp(name)
	if err != nil {
		return nil, fmt.Errorf("tls: client CRL: %w", err)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("tls: client CRL: %w", err)
	}
	blobs, err := crlBlobs(name, b)
	if err != nil {
		return nil, err
	}
	r := &revocations{revoked: map[caID]map[string]bool{}, nextUpdate: map[caID]time.Time{}, stamp: st}
	for _, der := range blobs {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("tls: client CRL %s: %w", name, err)
		}
		var issuer *x509.Certificate
		for _, ca := range s.clientCAs {
			if crl.CheckSignatureFrom(ca) == nil {
				issuer = ca
				break
			}
		}
		if issuer == nil {
			return nil, fmt.Errorf("tls: client CRL %s: not signed by a client CA", name)
		}
		if !crl.NextUpdate.IsZero() && s.o.Now().After(crl.NextUpdate) {
			return nil, fmt.Errorf("tls: client CRL %s: CRL of %s out of date since %s", name, issuer.Subject, crl.NextUpdate.UTC().Format(time.RFC3339))
		}
		id := idOf(issuer)
		if _, dup := r.revoked[id]; dup {
			return nil, fmt.Errorf("tls: client CRL %s: two CRLs of %s; keep only the current one", name, issuer.Subject)
		}
		serials := map[string]bool{}
		for _, e := range crl.RevokedCertificateEntries {
			serials[e.SerialNumber.Text(16)] = true
		}
		r.revoked[id] = serials
		r.nextUpdate[id] = crl.NextUpdate
	}
	return r, nil
}

// verifyConnection refuses, at the handshake, a client certificate that CheckRevocation refuses.
// Connections without a client certificate (workloads) are not affected.
func (s *Server) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return s.CheckRevocation(cs.VerifiedChains[0])
}

// CheckRevocation checks a verified client chain (leaf first, then the client CA that issued
// it) against the current CRL of its issuer: ErrRevoked when that CRL lists the leaf's serial
// (or another client CA's CRL lists a CA of the chain),
// ErrNoCRL when there is no CRL of that issuer or it is past its NextUpdate, since without a
// current CRL a revoked administrator could not be told apart. Authorizer calls it on every
// call that needs a role, so a revocation also ends connections opened before it (within
// CheckInterval of the new CRL reaching the file). Without a configured CRL it returns nil.
func (s *Server) CheckRevocation(chain []*x509.Certificate) error {
	if s.o.ClientCRLFile == "" {
		return nil
	}
	if len(chain) < 2 {
		return ErrNoCRL
	}
	r := s.currentCRL()
	if r == nil {
		return ErrNoCRL
	}
	id := idOf(chain[1])
	serials, ok := r.revoked[id]
	if !ok {
		return ErrNoCRL
	}
	if nu := r.nextUpdate[id]; !nu.IsZero() && s.o.Now().After(nu) {
		return fmt.Errorf("%w (the CRL is past its next update)", ErrNoCRL)
	}
	if serials[chain[0].SerialNumber.Text(16)] {
		return ErrRevoked
	}
	// A client CA in the chain that another client CA revoked issues nothing that works, even
	// where the verified chain ends at it (every client CA is an anchor).
	for _, ca := range chain[1:] {
		for _, up := range s.caIssuers[idOf(ca)] {
			if r.revoked[up][ca.SerialNumber.Text(16)] {
				return ErrRevoked
			}
		}
	}
	return nil
}

// currentCRL reloads the CRL when the file changed (at most once per CheckInterval); a CRL that
// fails to load keeps the previous one, which expires at its own NextUpdate.
func (s *Server) currentCRL() *revocations {
	now := s.o.Now()
	s.crlMu.Lock()
	defer s.crlMu.Unlock()
	if now.Sub(s.crlCheck) >= s.o.CheckInterval || now.Before(s.crlCheck) {
		s.crlCheck = now
		st, err := fileStamp(s.o.ClientCRLFile)
		if err == nil && (s.crl == nil || st != s.crl.stamp) {
			r, err := s.loadCRL()
			if err != nil {
				s.log.Warn("client CRL changed on disk but cannot be used; keeping the loaded one", "err", err)
			} else {
				s.crl = r
				s.log.Info("client CRL loaded", "crls", len(r.revoked), "revoked", r.count())
			}
		}
	}
	return s.crl
}
