package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/internal/tlsconfig"
)

const tlsconfigCheckInterval = tlsconfig.DefaultCheckInterval

// testCA issues certificates for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a leaf: a server certificate for 127.0.0.1, or a client certificate with a role URI.
func (ca *testCA) issue(t *testing.T, cn, role string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		if role != "" {
			tmpl.URIs = []*url.URL{{Scheme: "spiffe", Host: "medicus", Path: "/role/" + role}}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

// TestAdminRoles starts trustd with TLS and an admin CA, and checks that each role may call its
// admin methods and nothing else, that workloads reach the Trust API without a certificate, and
// that plaintext and foreign-CA clients are refused.
func TestAdminRoles(t *testing.T) {
	dir := t.TempDir()
	ca, admins := newCA(t, "server CA"), newCA(t, "admin CA")
	sc, sk := ca.issue(t, "trustd", "", true)
	cfg := &Config{Dev: true, DataDir: filepath.Join(dir, "data"), Policy: "../../policies/examples", Listen: "127.0.0.1:0",
		TLS: TLSConfig{CertFile: write(t, dir, "server.pem", string(sc)), KeyFile: write(t, dir, "server.key", string(sk)),
			ClientCAFile: write(t, dir, "admin-ca.pem", string(admins.pem))}}
	d, err := New(context.Background(), cfg, Env{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr := serve(t, d)

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	dial := func(t *testing.T, cfg *tls.Config) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	asRole := func(t *testing.T, issuer *testCA, role string) *grpc.ClientConn {
		cp, kp := issuer.issue(t, role+"-person", role, false)
		cert, err := tls.X509KeyPair(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		return dial(t, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	}
	ctx := context.Background()
	calls := map[string]func(pb.AdminClient) error{
		"CreateKey": func(c pb.AdminClient) error {
			_, err := c.CreateKey(ctx, &pb.CreateKeyRequest{Name: "t/" + strings.ToLower(randName())})
			return err
		},
		"PutSecret": func(c pb.AdminClient) error {
			_, err := c.PutSecret(ctx, &pb.PutSecretRequest{Name: "t/s", Value: []byte("v")})
			return err
		},
		"GetPolicyStatus": func(c pb.AdminClient) error {
			_, err := c.GetPolicyStatus(ctx, &pb.GetPolicyStatusRequest{})
			return err
		},
		"ReloadPolicies": func(c pb.AdminClient) error { _, err := c.ReloadPolicies(ctx, &pb.ReloadPoliciesRequest{}); return err },
		"GetLogInfo":     func(c pb.AdminClient) error { _, err := c.GetLogInfo(ctx, &pb.GetLogInfoRequest{}); return err },
	}
	allowed := map[string][]string{
		"operator":      {"CreateKey", "PutSecret"},
		"security-team": {"GetPolicyStatus", "ReloadPolicies"},
		"auditor":       {"GetLogInfo"},
	}
	for role, mine := range allowed {
		t.Run(role, func(t *testing.T) {
			c := pb.NewAdminClient(asRole(t, admins, role))
			for name, call := range calls {
				err := call(c)
				want := codes.PermissionDenied
				for _, m := range mine {
					if m == name {
						want = codes.OK
					}
				}
				if status.Code(err) != want {
					t.Errorf("%s as %s: %v, want %v", name, role, err, want)
				}
			}
		})
	}
	t.Run("no certificate", func(t *testing.T) {
		conn := dial(t, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13})
		_, err := pb.NewAdminClient(conn).GetLogInfo(ctx, &pb.GetLogInfoRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("admin call without a certificate: %v", err)
		}
		// Workloads need no certificate: they authenticate by attestation.
		if _, err := pb.NewTrustClient(conn).GetChallenge(ctx, &pb.GetChallengeRequest{}); err != nil {
			t.Fatalf("workload API: %v", err)
		}
		if r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health: %v %v", r, err)
		}
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		_, err := pb.NewAdminClient(asRole(t, newCA(t, "rogue"), "operator")).CreateKey(ctx, &pb.CreateKeyRequest{Name: "t/x"})
		if err == nil {
			t.Fatal("foreign-CA operator accepted")
		}
	})
	t.Run("certificate without a role", func(t *testing.T) {
		_, err := pb.NewAdminClient(asRole(t, admins, "")).CreateKey(ctx, &pb.CreateKeyRequest{Name: "t/x"})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("role-less certificate: %v", err)
		}
	})
	t.Run("plaintext", func(t *testing.T) {
		conn, _ := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		defer conn.Close()
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if _, err := pb.NewTrustClient(conn).GetChallenge(cctx, &pb.GetChallengeRequest{}); err == nil {
			t.Fatal("plaintext client served")
		}
	})
	t.Run("TLS 1.2", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		conn := dial(t, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12})
		if _, err := pb.NewTrustClient(conn).GetChallenge(cctx, &pb.GetChallengeRequest{}); err == nil {
			t.Fatal("TLS 1.2 client served")
		}
	})
}

// serve runs d until the test ends and returns its gRPC address.
func serve(t *testing.T, d *Daemon) string {
	t.Helper()
	r, w, _ := os.Pipe()
	d.log = slog.New(slog.NewTextHandler(w, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; w.Close() })
	re := regexp.MustCompile(`msg="trustd serving" grpc=(\S+)`)
	buf := make([]byte, 4096)
	var seen string
	for {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		seen += string(buf[:n])
		if m := re.FindStringSubmatch(seen); m != nil {
			go func() {
				for {
					if _, err := r.Read(buf); err != nil {
						return
					}
				}
			}()
			return m[1]
		}
	}
}

func randName() string {
	b := make([]byte, 6)
	rand.Read(b)
	const letters = "abcdefghijklmnopqrstuvwxyz"
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// crl returns a PEM CRL of ca revoking serials.
func (ca *testCA) crl(t *testing.T, number int64, serials ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// TestAdminLogInfoAndRevocation: the auditor's log-info shows the deployment's configured
// origin; once the CRL revokes the auditor's certificate, the next call on the connection opened
// before is refused (Unauthenticated), without waiting for a new handshake.
func TestAdminLogInfoAndRevocation(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the CRL check interval")
	}
	dir := t.TempDir()
	ca, admins := newCA(t, "server CA"), newCA(t, "admin CA")
	sc, sk := ca.issue(t, "trustd", "", true)
	cp, kp := admins.issue(t, "auditor-person", "auditor", false)
	crlFile := write(t, dir, "admin.crl", string(admins.crl(t, 1)))
	const origin = "trust.test.example/audit"
	cfg := &Config{Dev: true, DataDir: filepath.Join(dir, "data"), Policy: "../../policies/examples", Listen: "127.0.0.1:0",
		Audit: AuditConfig{Origin: origin},
		TLS: TLSConfig{CertFile: write(t, dir, "server.pem", string(sc)), KeyFile: write(t, dir, "server.key", string(sk)),
			ClientCAFile: write(t, dir, "admin-ca.pem", string(admins.pem)), ClientCRLFile: crlFile}}
	d, err := New(context.Background(), cfg, Env{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr := serve(t, d)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	cert, err := tls.X509KeyPair(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(
		&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := pb.NewAdminClient(conn)
	info, err := admin.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetOrigin() != origin {
		t.Errorf("log-info origin %q, want the configured %q", info.GetOrigin(), origin)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	if err := os.WriteFile(crlFile, admins.crl(t, 2, leaf.SerialNumber), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	os.Chtimes(crlFile, later, later)
	time.Sleep(tlsconfigCheckInterval + 500*time.Millisecond)
	if _, err := admin.GetLogInfo(ctx, &pb.GetLogInfoRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("revoked auditor on the open connection: %v, want Unauthenticated", err)
	}
}
