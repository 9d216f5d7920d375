package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/enclave"
)

// The service's TLS key is made inside the enclave at start and never leaves it. The enclave
// binds it into an SGX quote of its own, separate from the quotes it sends trustd:
//
//	report_data = SHA-512( u32be(len(label)) ‖ label ‖ u32be(32) ‖ SHA-256(SubjectPublicKeyInfo DER) )
//	label       = "medicus-trust/v1 ego-service tls-key"
//
// and serves the quote at GET /attestation. A client verifies the quote (Intel's signatures,
// the enclave's identity by the same policy trustd applies), recomputes report_data from the
// public key of the TLS connection it is on, and from then on talks only to that key (pinning).
// The certificate is self-signed: the quote, not a CA, vouches for the key.
const tlsBindingLabel = "medicus-trust/v1 ego-service tls-key"

// tlsReportData is the report data that binds the TLS public key spki (DER
// SubjectPublicKeyInfo) into the enclave's quote.
func tlsReportData(spki []byte) [attest.ReportDataSize]byte {
	d := sha256.Sum256(spki)
	h := sha512.New()
	for _, part := range [][]byte{[]byte(tlsBindingLabel), d[:]} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var out [attest.ReportDataSize]byte
	h.Sum(out[:0])
	return out
}

// attestationDoc is the body of GET /attestation.
type attestationDoc struct {
	// TEE is "sgx".
	TEE attest.TEE `json:"tee"`
	// Quote is the raw DCAP quote whose report data is tlsReportData of the server's key.
	Quote []byte `json:"quote"`
}

// tlsIdentity is the enclave's TLS certificate and the quote that vouches for its key.
type tlsIdentity struct {
	cert tls.Certificate
	doc  []byte // JSON attestationDoc
}

// newTLSIdentity makes a fresh P-256 TLS key inside the enclave, a self-signed certificate for
// it, and a quote from prov that binds the key.
func newTLSIdentity(ctx context.Context, prov enclave.Provider, now time.Time) (*tlsIdentity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "ego-service (attested key, see /attestation)"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	ev, err := prov.Evidence(ctx, tlsReportData(spki))
	if err != nil {
		return nil, fmt.Errorf("quote binding the TLS key: %w", err)
	}
	doc, err := json.Marshal(attestationDoc{TEE: ev.TEE, Quote: ev.Report})
	if err != nil {
		return nil, err
	}
	return &tlsIdentity{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, doc: doc}, nil
}

// serverTLS serves the attested certificate, TLS 1.3 only, to clients with a certificate that
// chains to clientCAs (the hospitals' client CA): no certificate, no connection.
func (id *tlsIdentity) serverTLS(clientCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{id.cert},
		ClientCAs:    clientCAs,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

// ServiceCheck is what a hospital client knows about the service before it connects: how to
// verify SGX quotes and how to decide whether the enclave is the approved one.
type ServiceCheck struct {
	// Verifier checks the quote's authenticity (attest/sgx with Intel's root and collateral).
	Verifier attest.Verifier
	// Approve decides on the verified claims, e.g. a policies.Bundle's Evaluate with the same
	// policy trustd uses (signer, product, minimum SVN, no debug, TCB status).
	Approve func(*attest.Claims) error
	// Now is the verification time; nil means time.Now.
	Now func() time.Time
}

// errNotBound is returned when the server's TLS key is not the one its quote binds.
var errNotBound = errors.New("the server's TLS key is not the key its attestation binds")

// hospitalClient connects to the service at base (https://host:port) with the hospital's client
// certificate, fetches GET /attestation over that connection, verifies the quote with check,
// checks that it binds the TLS key of that very connection, and returns an HTTP client pinned to
// that key: every later connection must present it, or fails before any request is sent.
func hospitalClient(ctx context.Context, base string, clientCert tls.Certificate, check ServiceCheck) (*http.Client, error) {
	var seen []byte // SPKI of the first connection's server
	first := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{clientCert},
		MinVersion:   tls.VersionTLS13,
		// No CA vouches for the enclave's self-signed certificate: the quote does, checked below
		// against the key captured here. Nothing but GET /attestation is sent before that.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			seen = cs.PeerCertificates[0].RawSubjectPublicKeyInfo
			return nil
		},
	}, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/attestation", nil)
	if err != nil {
		return nil, err
	}
	resp, err := first.Do(req)
	if err != nil {
		return nil, fmt.Errorf("attestation: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("attestation: %s", resp.Status)
	}
	var doc attestationDoc
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("attestation: %w", err)
	}
	if doc.TEE != check.Verifier.TEE() {
		return nil, fmt.Errorf("attestation: TEE %q, want %q", doc.TEE, check.Verifier.TEE())
	}
	opts := attest.Options{}
	if check.Now != nil {
		opts.Now = check.Now()
	}
	claims, err := check.Verifier.Verify(ctx, &attest.Evidence{TEE: doc.TEE, Report: doc.Quote}, opts)
	if err != nil {
		return nil, fmt.Errorf("attestation: %w", err)
	}
	if err := check.Approve(claims); err != nil {
		return nil, fmt.Errorf("attestation: enclave not approved: %w", err)
	}
	want := tlsReportData(seen)
	if !bytes.Equal(claims.ReportData, want[:]) {
		return nil, errNotBound
	}
	pin := sha256.Sum256(seen)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates:       []tls.Certificate{clientCert},
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by the pin
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo) != pin {
				return errNotBound
			}
			return nil
		},
	}}}, nil
}
