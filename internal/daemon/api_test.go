package daemon

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"

	pb "github.com/medicus-cloud/trust/api/trustv1"
)

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "trustd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// One TLS port serves gRPC and HTTP/JSON (over HTTP/1.1 and HTTP/2); reflection is there in dev
// mode only; tokens carry the configured issuer and audience.
func TestOnePortGRPCAndJSON(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	addr := freeAddr(t)
	cfg := &Config{Dev: true, DataDir: filepath.Join(dir, "data"), Policy: "../../policies/examples", Listen: addr,
		TLS: TLSConfig{CertFile: cert, KeyFile: key}, TokenIssuer: "https://trust.example", TokenAudience: "medicus-trust"}
	d, err := New(context.Background(), cfg, Env{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var hr *healthpb.HealthCheckResponse
	for range 50 {
		if hr, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health: %v", err)
	}
	if _, err := pb.NewTrustClient(conn).GetTokenKeys(ctx, &pb.GetTokenKeysRequest{}); err != nil {
		t.Fatalf("gRPC: %v", err)
	}
	rs, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}})
	if r, err := rs.Recv(); err != nil || !strings.Contains(r.String(), "medicus.trust.v1.Trust") {
		t.Fatalf("reflection in dev mode: %v %v", r, err)
	}

	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		hc := &http.Client{Transport: tr}
		resp, err := hc.Post("https://"+addr+"/medicus.trust.v1.Trust/GetChallenge", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"nonce"`)) || (resp.ProtoMajor == 2) != h2 {
			t.Fatalf("JSON over %s: %s %s", resp.Proto, resp.Status, b)
		}
		resp, err = hc.Post("https://"+addr+"/medicus.trust.v1.Trust/GetChallenge", "application/json", strings.NewReader(`{"x":1}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("unknown field over %s: %s", resp.Proto, resp.Status)
		}
	}
	if d.tokens.IssuerName() != "https://trust.example" || d.tokens.Audience() != "medicus-trust" {
		t.Fatalf("issuer %q audience %q", d.tokens.IssuerName(), d.tokens.Audience())
	}

	// Outside dev mode the same server has no reflection.
	d.cfg.Dev = false
	srv, _, _, err := d.grpcServer()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.GetServiceInfo()["grpc.reflection.v1.ServerReflection"]; ok {
		t.Fatal("reflection registered outside dev mode")
	}
	d.cfg.Dev = true
}
