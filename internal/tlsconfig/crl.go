package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// revocations is one CRL of the admin CA, checked and indexed.
type revocations struct {
	serials    map[string]bool // hex serial numbers
	nextUpdate time.Time
	stamp      stamp
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

// loadCRL reads the CRL file (PEM or DER) and accepts it only if one of the client CAs signed it
// and it is current.
func (s *Server) loadCRL() (*revocations, error) {
	st, err := fileStamp(s.o.ClientCRLFile)
	if err != nil {
		return nil, fmt.Errorf("tls: client CRL: %w", err)
	}
	b, err := os.ReadFile(s.o.ClientCRLFile)
	if err != nil {
		return nil, fmt.Errorf("tls: client CRL: %w", err)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("tls: client CRL %s: PEM block %q, want X509 CRL", s.o.ClientCRLFile, blk.Type)
		}
		b = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, fmt.Errorf("tls: client CRL %s: %w", s.o.ClientCRLFile, err)
	}
	signed := false
	for _, ca := range s.clientCAs {
		if crl.CheckSignatureFrom(ca) == nil {
			signed = true
			break
		}
	}
	if !signed {
		return nil, fmt.Errorf("tls: client CRL %s: not signed by a client CA", s.o.ClientCRLFile)
	}
	if !crl.NextUpdate.IsZero() && s.o.Now().After(crl.NextUpdate) {
		return nil, fmt.Errorf("tls: client CRL %s: out of date since %s", s.o.ClientCRLFile, crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	r := &revocations{serials: map[string]bool{}, nextUpdate: crl.NextUpdate, stamp: st}
	for _, e := range crl.RevokedCertificateEntries {
		r.serials[e.SerialNumber.Text(16)] = true
	}
	return r, nil
}

// verifyConnection refuses a client certificate the CRL revokes, or any client certificate when
// the CRL is out of date: without a current CRL a revoked administrator could not be told
// apart. Connections without a client certificate (workloads) are not affected.
func (s *Server) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	r := s.currentCRL()
	if r == nil {
		return errors.New("tls: no usable client CRL; client certificates are refused")
	}
	if !r.nextUpdate.IsZero() && s.o.Now().After(r.nextUpdate) {
		return errors.New("tls: client CRL out of date; client certificates are refused")
	}
	if r.serials[cs.VerifiedChains[0][0].SerialNumber.Text(16)] {
		return errors.New("tls: client certificate revoked")
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
				s.log.Info("client CRL loaded", "revoked", len(r.serials), "next_update", r.nextUpdate)
			}
		}
	}
	return s.crl
}
