package tlsconfig_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/internal/tlsconfig"
)

// crl returns a PEM CRL by ca revoking serials, valid until nextUpdate.
func (ca *testCA) crl(t *testing.T, number int64, nextUpdate time.Time, serials ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: nextUpdate}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func serialOf(t *testing.T, kp tls.Certificate) *big.Int {
	t.Helper()
	c, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

func TestClientCRL(t *testing.T) {
	p := &pki{serverCA: newCA(t, "server CA"), adminCA: newCA(t, "admin CA"), rogueCA: newCA(t, "rogue CA")}
	f := serverFiles(t, p.serverCA, p.adminCA)
	role := func(cn, r string) tls.Certificate {
		return p.adminCA.keyPair(t, leafSpec{cn: cn, uris: []string{"spiffe://medicus/role/" + r}})
	}
	alice, bob, carol := role("alice", "operator"), role("bob", "operator"), role("carol", "auditor")
	crlFile := filepath.Join(filepath.Dir(f.cert), "admin.crl")
	writeFile(t, crlFile, p.adminCA.crl(t, 1, time.Now().Add(time.Hour), serialOf(t, bob)))

	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ts, err := tlsconfig.New(tlsconfig.Options{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.clientCA,
		ClientCRLFile: crlFile, CheckInterval: time.Second, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	az, err := tlsconfig.NewAuthorizer(rules())
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(ts.Credentials()), grpc.ChainUnaryInterceptor(az.UnaryInterceptor()))
	pb.RegisterTrustServer(srv, pb.UnimplementedTrustServer{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	srv.RegisterService(adminDesc(), nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A fresh connection per check, so each one is a new handshake against the current CRL.
	try := func(method string, certs ...tls.Certificate) codes.Code {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(p, certs...))))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		return status.Code(call(ctx, cc, method))
	}
	steps := []struct {
		name   string
		before func()
		method string
		certs  []tls.Certificate
		want   codes.Code
	}{
		{"alice, not revoked", nil, mCreateKey, []tls.Certificate{alice}, codes.OK},
		{"bob, revoked", nil, mCreateKey, []tls.Certificate{bob}, codes.Unavailable},
		{"workload without a certificate", nil, mHealth, nil, codes.OK},
		{"new CRL revokes alice too", func() {
			writeFile(t, crlFile, p.adminCA.crl(t, 2, now.Add(2*time.Hour), serialOf(t, bob), serialOf(t, alice)))
			later := time.Now().Add(time.Minute)
			os.Chtimes(crlFile, later, later)
			advance(2 * time.Second)
		}, mCreateKey, []tls.Certificate{alice}, codes.Unavailable},
		{"carol still fine", nil, mReadLog, []tls.Certificate{carol}, codes.OK},
		{"a CRL from the wrong CA is ignored", func() {
			writeFile(t, crlFile, p.rogueCA.crl(t, 3, now.Add(3*time.Hour)))
			later := time.Now().Add(2 * time.Minute)
			os.Chtimes(crlFile, later, later)
			advance(2 * time.Second)
		}, mCreateKey, []tls.Certificate{alice}, codes.Unavailable},
		{"CRL out of date: certificates refused", func() { advance(3 * time.Hour) }, mReadLog, []tls.Certificate{carol}, codes.Unavailable},
		{"CRL out of date: workloads unaffected", nil, mHealth, nil, codes.OK},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		if got := try(s.method, s.certs...); got != s.want {
			t.Errorf("%s: %v, want %v", s.name, got, s.want)
		}
	}
}

func TestClientCRLRefusedAtStart(t *testing.T) {
	p := &pki{serverCA: newCA(t, "server CA"), adminCA: newCA(t, "admin CA"), rogueCA: newCA(t, "rogue CA")}
	f := serverFiles(t, p.serverCA, p.adminCA)
	dir := filepath.Dir(f.cert)
	put := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		writeFile(t, path, b)
		return path
	}
	tests := []struct {
		name, file, want string
	}{
		{"signed by another CA", put("rogue.crl", p.rogueCA.crl(t, 1, time.Now().Add(time.Hour))), "not signed"},
		{"out of date", put("old.crl", p.adminCA.crl(t, 1, time.Now().Add(-30*time.Second))), "out of date"},
		{"not a CRL", put("cert.crl", p.adminCA.pem), "want X509 CRL"},
		{"garbage", put("junk.crl", []byte("junk")), "malformed"},
		{"missing", filepath.Join(dir, "missing.crl"), "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsconfig.New(tlsconfig.Options{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.clientCA, ClientCRLFile: tc.file})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := tlsconfig.New(tlsconfig.Options{CertFile: f.cert, KeyFile: f.key, ClientCRLFile: put("x.crl", nil)}); err == nil {
		t.Error("a CRL without a client CA was accepted")
	}
}

// crlServer serves the test admin service over mutual TLS with the CRL in crlFile, checked by
// the Authorizer on every call, on a clock the test moves.
func crlServer(t *testing.T, f files, crlFile string, clock func() time.Time) string {
	t.Helper()
	ts, err := tlsconfig.New(tlsconfig.Options{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.clientCA,
		ClientCRLFile: crlFile, CheckInterval: time.Second, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	r := rules()
	r.Revocation = ts
	az, err := tlsconfig.NewAuthorizer(r)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(ts.Credentials()), grpc.ChainUnaryInterceptor(az.UnaryInterceptor()))
	pb.RegisterTrustServer(srv, pb.UnimplementedTrustServer{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	srv.RegisterService(adminDesc(), nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestRevocationEndsOpenConnections: a certificate revoked after its connection's handshake is
// refused on the connection's next call, not when the connection ends.
func TestRevocationEndsOpenConnections(t *testing.T) {
	p := &pki{serverCA: newCA(t, "server CA"), adminCA: newCA(t, "admin CA")}
	f := serverFiles(t, p.serverCA, p.adminCA)
	alice := p.adminCA.keyPair(t, leafSpec{cn: "alice", uris: []string{"spiffe://medicus/role/operator"}})
	crlFile := filepath.Join(filepath.Dir(f.cert), "admin.crl")
	writeFile(t, crlFile, p.adminCA.crl(t, 1, time.Now().Add(time.Hour)))
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	addr := crlServer(t, f, crlFile, clock)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc := dial(t, addr, credentials.NewTLS(clientTLS(p, alice)))
	if err := call(ctx, cc, mCreateKey); status.Code(err) != codes.OK {
		t.Fatalf("before revocation: %v", err)
	}
	writeFile(t, crlFile, p.adminCA.crl(t, 2, time.Now().Add(time.Hour), serialOf(t, alice)))
	later := time.Now().Add(time.Minute)
	os.Chtimes(crlFile, later, later)
	mu.Lock()
	now = now.Add(2 * time.Second) // past CheckInterval: the CRL file is looked at again
	mu.Unlock()
	err := call(ctx, cc, mCreateKey)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("after revocation, same connection: %v, want Unauthenticated naming the revocation", err)
	}
	// The workload API on the same connection is not a role method and stays open.
	if err := call(ctx, cc, mHealth); err != nil {
		t.Errorf("health on the same connection: %v", err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour) // the CRL is now past its next update
	mu.Unlock()
	if err := call(ctx, cc, mCreateKey); status.Code(err) != codes.Unavailable {
		t.Errorf("stale CRL, open connection: %v, want Unavailable", err)
	}
}

// TestCRLMatchesIssuerAndSerial: with two admin CAs, a CRL revokes only its own CA's
// certificate with a serial, not another CA's certificate with the same serial; a CA without a
// CRL in the file issues no working certificate.
func TestCRLMatchesIssuerAndSerial(t *testing.T) {
	p := &pki{serverCA: newCA(t, "server CA"), adminCA: newCA(t, "admin CA")}
	second, third := newCA(t, "second admin CA"), newCA(t, "third admin CA")
	f := serverFiles(t, p.serverCA, p.adminCA)
	writeFile(t, f.clientCA, append(append(append([]byte{}, p.adminCA.pem...), second.pem...), third.pem...))
	same := big.NewInt(4242)
	spec := func(cn string) leafSpec {
		return leafSpec{cn: cn, serial: same, uris: []string{"spiffe://medicus/role/operator"}}
	}
	revoked, namesake, orphan := p.adminCA.keyPair(t, spec("revoked")), second.keyPair(t, spec("namesake")), third.keyPair(t, spec("orphan"))
	crlFile := filepath.Join(filepath.Dir(f.cert), "admin.crl")
	writeFile(t, crlFile, append(p.adminCA.crl(t, 1, time.Now().Add(time.Hour), same), second.crl(t, 1, time.Now().Add(time.Hour))...))
	addr := crlServer(t, f, crlFile, time.Now)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		ok   bool
	}{
		{"revoked by its CA", revoked, false},
		{"same serial, other CA", namesake, true},
		{"CA without a CRL", orphan, false},
	} {
		cc := dial(t, addr, credentials.NewTLS(clientTLS(p, tc.cert)))
		err := call(ctx, cc, mCreateKey)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
