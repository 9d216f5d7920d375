package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ClientOptions configure a client of trustd: trustctl (admin calls, health, status, load
// tests) and probes.
type ClientOptions struct {
	// CAFile holds the PEM CAs that may sign trustd's certificate. Empty means the system roots.
	CAFile string
	// ServerName overrides the name checked in trustd's certificate (for example when dialing
	// 127.0.0.1 from a probe).
	ServerName string
	// CertFile and KeyFile are an administrator's certificate (with its role URI) and key.
	// Both or neither.
	CertFile, KeyFile string
}

// Client returns a TLS 1.3 client configuration for o. It never disables verification.
func Client(o ClientOptions) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: o.ServerName}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: CA: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: CA %s: no PEM certificates in it", o.CAFile)
		}
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		kp, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client certificate %s: %w", o.CertFile, err)
		}
		c.Certificates = []tls.Certificate{kp}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, errors.New("tls: a client certificate needs both its certificate and key file")
	}
	return c, nil
}
