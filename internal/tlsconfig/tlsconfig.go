// Package tlsconfig builds trustd's server TLS: TLS 1.3 only, the certificate and key read from
// files and reloaded when they change (a renewed Kubernetes Secret or a certbot run takes effect
// without a restart), and optional client certificates for the admin API.
//
// Workloads do not need client certificates: they authenticate by attestation. Administrators
// do: their certificate carries exactly one role (see roles.go), and Authorizer checks every
// call against a table of which role may call which method. An optional CRL of the admin CA,
// also reloaded on change, revokes administrators' certificates before they expire.
package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/medicus-cloud/trust/internal/keyfile"
)

// DefaultCheckInterval is how often, at most, the files are looked at again.
const DefaultCheckInterval = 5 * time.Second

// Options configure a Server.
type Options struct {
	// CertFile and KeyFile hold the PEM certificate chain (leaf first) and its private key.
	// Both are required.
	CertFile, KeyFile string
	// ClientCAFile holds the PEM certificates of the CAs that issue administrators'
	// certificates. Empty: client certificates are neither requested nor accepted, so no call
	// can carry a role. The CA file is read once; rotate it with a rolling restart.
	ClientCAFile string
	// ClientCRLFile holds the admin CA's certificate revocation list (PEM or DER), reloaded
	// when it changes. When set, revoked client certificates are refused, and so is every
	// client certificate while the CRL is past its NextUpdate. Needs ClientCAFile.
	ClientCRLFile string
	// RequireClientCert refuses handshakes without a valid client certificate, for a listener
	// that serves only the admin API. Without it a certificate is verified if given, so that
	// workloads and administrators can share one listener.
	RequireClientCert bool
	// CheckInterval is how often, at most, a handshake looks at the files' modification times.
	// Zero means DefaultCheckInterval.
	CheckInterval time.Duration
	// Logger receives reload events (never key material). Nil discards them.
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Server hands out the current certificate to TLS handshakes.
type Server struct {
	o         Options
	log       *slog.Logger
	clients   *x509.CertPool
	clientCAs []*x509.Certificate
	// caIssuers maps a client CA to the other client CAs that issued it, whose CRLs may revoke it.
	caIssuers map[caID][]caID
	cur       atomic.Pointer[loaded]

	crlMu    sync.Mutex
	crl      *revocations
	crlCheck time.Time

	mu        sync.Mutex // serializes checks and reloads
	lastCheck time.Time
}

// loaded is one certificate as read from the files, with what identifies the files' version.
type loaded struct {
	cert      *tls.Certificate
	certStamp stamp
	keyStamp  stamp
}

type stamp struct {
	mod  time.Time
	size int64
}

// New reads the files and returns a Server. A missing, unreadable, mismatched or expired
// certificate is an error: trustd does not start without a usable one.
func New(o Options) (*Server, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("tls: cert_file and key_file are both required outside --dev")
	}
	if (o.RequireClientCert || o.ClientCRLFile != "") && o.ClientCAFile == "" {
		return nil, errors.New("tls: require_client_cert and client_crl_file need client_ca_file")
	}
	if o.CheckInterval < 0 {
		return nil, errors.New("tls: negative check interval")
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, log: o.Logger}
	l, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(l)
	s.lastCheck = o.Now()
	if o.ClientCAFile != "" {
		pem, err := os.ReadFile(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client CA: %w", err)
		}
		if s.clientCAs, err = parseCAs(pem); err != nil {
			return nil, fmt.Errorf("tls: client CA %s: %w", o.ClientCAFile, err)
		}
		s.clients = x509.NewCertPool()
		s.caIssuers = map[caID][]caID{}
		for _, c := range s.clientCAs {
			s.clients.AddCert(c)
			for _, up := range s.clientCAs {
				if up != c && bytes.Equal(c.RawIssuer, up.RawSubject) && c.CheckSignatureFrom(up) == nil {
					s.caIssuers[idOf(c)] = append(s.caIssuers[idOf(c)], idOf(up))
				}
			}
		}
	}
	if o.ClientCRLFile != "" {
		if s.crl, err = s.loadCRL(); err != nil {
			return nil, err
		}
		s.crlCheck = o.Now()
	}
	return s, nil
}

// Config returns the server TLS configuration: TLS 1.3 only, the certificate from
// GetCertificate, and client certificate verification as configured.
func (s *Server) Config() *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: s.GetCertificate,
	}
	if s.clients != nil {
		c.ClientCAs = s.clients
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if s.o.RequireClientCert {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
		if s.o.ClientCRLFile != "" {
			c.VerifyConnection = s.verifyConnection
		}
	}
	return c
}

// Credentials returns gRPC transport credentials over Config.
func (s *Server) Credentials() credentials.TransportCredentials {
	return credentials.NewTLS(s.Config())
}

// Leaf returns the certificate being served now, for status pages and expiry alerts.
func (s *Server) Leaf() *x509.Certificate { return s.cur.Load().cert.Leaf }

// GetCertificate implements tls.Config.GetCertificate. At most once per CheckInterval it looks
// at the files and, if either changed, loads them again. A reload that fails keeps the previous
// certificate and logs why: a half-written file during renewal must not take the service down.
func (s *Server) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.maybeReload()
	return s.cur.Load().cert, nil
}

// Reload reads the files now, for example on SIGHUP. On error the current certificate stays.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

func (s *Server) maybeReload() {
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastCheck) < s.o.CheckInterval && !now.Before(s.lastCheck) {
		return
	}
	s.lastCheck = now
	cur := s.cur.Load()
	cs, cerr := fileStamp(s.o.CertFile)
	ks, kerr := fileStamp(s.o.KeyFile)
	if cerr != nil || kerr != nil {
		s.log.Warn("tls certificate files unreadable; serving the loaded certificate", "cert_file", s.o.CertFile, "err", errors.Join(cerr, kerr))
		return
	}
	if cs == cur.certStamp && ks == cur.keyStamp {
		return
	}
	if err := s.reloadLocked(); err != nil {
		// Logged at every check until fixed, which is at most once per CheckInterval.
		s.log.Warn("tls certificate changed on disk but cannot be used; serving the loaded certificate", "err", err)
	}
}

func (s *Server) reloadLocked() error {
	l, err := s.load()
	if err != nil {
		return err
	}
	s.cur.Store(l)
	s.log.Info("tls certificate loaded", "subject", l.cert.Leaf.Subject.String(),
		"serial", l.cert.Leaf.SerialNumber.Text(16), "not_after", l.cert.Leaf.NotAfter)
	return nil
}

// load reads the pair. The files' stamps are taken before reading, so a write that lands during
// the read changes the stamp and is picked up at the next check.
func (s *Server) load() (*loaded, error) {
	cs, err := fileStamp(s.o.CertFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	ks, err := fileStamp(s.o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	certPEM, err := os.ReadFile(s.o.CertFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	// The key file is refused when others may read it, like every key file trustd reads.
	keyPEM, err := keyfile.Read(s.o.KeyFile, "tls: key_file")
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	clear(keyPEM)
	if err != nil {
		// The error names the files and the problem, never the key bytes.
		return nil, fmt.Errorf("tls: loading %s and %s: %w", s.o.CertFile, s.o.KeyFile, err)
	}
	now := s.o.Now()
	if now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("tls: certificate %s expired at %s", s.o.CertFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.Leaf.NotBefore) {
		return nil, fmt.Errorf("tls: certificate %s not valid before %s", s.o.CertFile, cert.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &loaded{cert: &cert, certStamp: cs, keyStamp: ks}, nil
}

// fileStamp follows symlinks, so a Kubernetes Secret volume's atomic ..data swap counts as a change.
func fileStamp(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}, nil
}
