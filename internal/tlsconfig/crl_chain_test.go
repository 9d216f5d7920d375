package tlsconfig_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

// subCA returns an intermediate CA that parent issued.
func (parent *testCA) subCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Medicus test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.cert, key.Public(), parent.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// TestCRLRevokesAClientCA: with an admin root and its intermediate both in client_ca_file, the
// root's CRL revoking the intermediate ends every certificate the intermediate issued, although
// the verified chain stops at the intermediate (an anchor of its own) and the intermediate's own
// CRL does not list them.
func TestCRLRevokesAClientCA(t *testing.T) {
	p := &pki{serverCA: newCA(t, "server CA"), adminCA: newCA(t, "admin root CA")}
	inter := p.adminCA.subCA(t, "admin intermediate CA")
	f := serverFiles(t, p.serverCA, p.adminCA)
	writeFile(t, f.clientCA, append(append([]byte{}, p.adminCA.pem...), inter.pem...))
	op := inter.keyPair(t, leafSpec{cn: "mallory", uris: []string{"spiffe://medicus/role/operator"}})
	direct := p.adminCA.keyPair(t, leafSpec{cn: "alice", uris: []string{"spiffe://medicus/role/operator"}})
	crlFile := filepath.Join(filepath.Dir(f.cert), "admin.crl")
	writeFile(t, crlFile, append(p.adminCA.crl(t, 1, time.Now().Add(time.Hour), inter.cert.SerialNumber),
		inter.crl(t, 1, time.Now().Add(time.Hour))...))
	addr := crlServer(t, f, crlFile, time.Now)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := call(ctx, dial(t, addr, credentials.NewTLS(clientTLS(p, direct))), mCreateKey); err != nil {
		t.Fatalf("certificate of the root: %v", err)
	}
	if err := call(ctx, dial(t, addr, credentials.NewTLS(clientTLS(p, op))), mCreateKey); err == nil {
		t.Fatal("a certificate of a revoked intermediate CA was accepted")
	}
}
