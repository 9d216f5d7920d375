package intel

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"
)

// MaxChainPEM bounds a PEM certificate chain; Intel's are about 3 KiB.
const MaxChainPEM = 64 << 10

// Chain is a certificate chain that verified to the trusted root.
type Chain struct {
	// Leaf is the end-entity certificate (PCK, TCB signing, or PCK CA for a CRL chain).
	Leaf *x509.Certificate
	// Issuers are the certificates above Leaf up to and including the root.
	Issuers []*x509.Certificate
	// NotBefore and NotAfter bound the window in which every certificate of the chain is valid.
	NotBefore, NotAfter time.Time
}

// Issuer is the certificate that signed Leaf.
func (c *Chain) Issuer() *x509.Certificate { return c.Issuers[0] }

// ValidAt reports an error naming the bound when t is outside every certificate's validity.
func (c *Chain) ValidAt(t time.Time) error {
	if t.Before(c.NotBefore) {
		return fmt.Errorf("certificate chain not valid before %s (verification time %s)", c.NotBefore.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
	}
	if t.After(c.NotAfter) {
		return fmt.Errorf("certificate chain expired at %s (verification time %s)", c.NotAfter.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
	}
	return nil
}

// Roots verifies certificate chains to one trusted root and remembers the chains it verified,
// by the SHA-256 fingerprint of their bytes, so that a platform's PCK chain costs its signature
// checks once. It is safe for concurrent use.
type Roots struct {
	root  *x509.Certificate
	pool  *x509.CertPool
	cache sync.Map // [32]byte -> *Chain
	n     int      // entries, approximate; guarded by mu
	mu    sync.Mutex
	coll  collateralCache
}

// maxCachedChains bounds the chain cache; past it the cache is dropped and rebuilt, which costs
// only re-verification.
const maxCachedChains = 4096

// NewRoots trusts root; nil means the embedded Intel SGX Root CA.
func NewRoots(root *x509.Certificate) *Roots {
	if root == nil {
		root = IntelRoot()
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &Roots{root: root, pool: pool}
}

// Root is the trusted root certificate.
func (r *Roots) Root() *x509.Certificate { return r.root }

// VerifyPEM verifies a PEM chain (leaf first) at time t. Whatever root the chain carries is
// ignored: the chain must verify to r's root.
func (r *Roots) VerifyPEM(chainPEM []byte, t time.Time) (*Chain, error) {
	if len(chainPEM) > MaxChainPEM {
		return nil, fmt.Errorf("certificate chain is %d bytes, limit %d", len(chainPEM), MaxChainPEM)
	}
	key := sha256.Sum256(chainPEM)
	if c, ok := r.cache.Load(key); ok {
		ch := c.(*Chain)
		if err := ch.ValidAt(t); err != nil {
			return nil, err
		}
		return ch, nil
	}
	certs, err := ParsePEMChain(chainPEM)
	if err != nil {
		return nil, err
	}
	ch, err := r.verify(certs, t)
	if err != nil {
		return nil, err
	}
	r.store(key, ch)
	return ch, nil
}

func (r *Roots) store(key [32]byte, ch *Chain) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n >= maxCachedChains {
		r.cache.Clear()
		r.n = 0
	}
	if _, loaded := r.cache.LoadOrStore(key, ch); !loaded {
		r.n++
	}
}

func (r *Roots) verify(certs []*x509.Certificate, t time.Time) (*Chain, error) {
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		if !c.Equal(r.root) {
			inter.AddCert(c)
		}
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         r.pool,
		Intermediates: inter,
		CurrentTime:   t,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, fmt.Errorf("certificate %q is not valid at %s: %w", inv.Cert.Subject.CommonName, t.UTC().Format(time.RFC3339), err)
		}
		return nil, fmt.Errorf("certificate chain does not verify to %q: %w", r.root.Subject.CommonName, err)
	}
	// Intel's hierarchy is a tree: exactly one path.
	path := chains[0]
	ch := &Chain{Leaf: path[0], Issuers: path[1:], NotBefore: path[0].NotBefore, NotAfter: path[0].NotAfter}
	for _, c := range path[1:] {
		if c.NotBefore.After(ch.NotBefore) {
			ch.NotBefore = c.NotBefore
		}
		if c.NotAfter.Before(ch.NotAfter) {
			ch.NotAfter = c.NotAfter
		}
	}
	if len(ch.Issuers) == 0 {
		return nil, errors.New("certificate chain is only the root")
	}
	return ch, nil
}

// ParsePEMChain parses concatenated PEM certificates. Only CERTIFICATE blocks are allowed; what
// follows the last block may be only whitespace or NUL padding (quotes pad the chain).
func ParsePEMChain(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bytes.TrimLeft(b, " \t\r\n")
	if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
		return nil, errors.New("certificate chain does not start with a PEM block")
	}
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate chain holds a %q PEM block", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %w", len(certs), err)
		}
		certs = append(certs, c)
		if len(certs) > 8 {
			return nil, errors.New("certificate chain has more than 8 certificates")
		}
	}
	if len(bytes.Trim(rest, " \t\r\n\x00")) != 0 {
		return nil, errors.New("certificate chain has trailing data that is not PEM")
	}
	if len(certs) < 2 {
		return nil, fmt.Errorf("certificate chain has %d certificates, want a leaf and its issuers", len(certs))
	}
	return certs, nil
}
