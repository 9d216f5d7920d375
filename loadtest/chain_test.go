package loadtest_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/internal/limits"
	"github.com/medicus-cloud/trust/internal/tlsconfig"
	"github.com/medicus-cloud/trust/loadtest"
	"github.com/medicus-cloud/trust/metrics"
)

// serverCert writes a CA-issued server certificate for 127.0.0.1 into dir and returns the
// files and a pool holding the CA.
func serverCert(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "loadtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "trustd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return certFile, keyFile, roots
}

// TestProductionChainOverTLS runs the load test against trustd's service wired the way
// production wires it: TLS 1.3 from files, then the interceptors in the recommended order
// (metrics, limits, access log, roles), and checks what the metrics saw.
func TestProductionChainOverTLS(t *testing.T) {
	certFile, keyFile, roots := serverCert(t, t.TempDir())
	ts, err := tlsconfig.New(tlsconfig.Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := limits.New(limits.Options{Rate: 1000, Burst: 1000, Observer: m,
		Exempt: []string{healthpb.Health_Check_FullMethodName}})
	if err != nil {
		t.Fatal(err)
	}
	az, err := tlsconfig.NewAuthorizer(tlsconfig.Rules{
		Public: append(tlsconfig.Methods(&pb.Trust_ServiceDesc), tlsconfig.Methods(&healthpb.Health_ServiceDesc)...)})
	if err != nil {
		t.Fatal(err)
	}
	opts := append(lim.ServerOptions(),
		grpc.Creds(ts.Credentials()),
		grpc.ChainUnaryInterceptor(m.UnaryInterceptor(), lim.UnaryInterceptor(), metrics.AccessLog(metrics.AccessLogOptions{}), az.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(m.StreamInterceptor(), lim.StreamInterceptor(), az.StreamInterceptor()))
	addr := startTrustd(t, opts...)

	r, err := loadtest.Run(ctxT(t), loadtest.Options{Addr: addr, TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13},
		Workloads: 4, Requests: 20, Measurement: measurement(), Name: keyName})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 20 || r.Errors != 0 {
		t.Fatalf("%d ok, errors %v %v; want 20 clean", r.OK, r.ErrorsByCode, r.SampleErrors)
	}
	page, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, metrics.NameRequests, metrics.NameRequestDuration)
	if err != nil {
		t.Fatal(err)
	}
	st, err := metrics.ParseStatus(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{pb.Trust_GetChallenge_FullMethodName: 20, pb.Trust_Attest_FullMethodName: 20, pb.Trust_GenerateDataKey_FullMethodName: 20}
	for _, ms := range st.Methods {
		if ms.Requests != want[ms.Method] || ms.Errors != 0 || !(ms.P99 > 0) {
			t.Errorf("%s: %v requests, %v errors, p99 %v; want %v clean", ms.Method, ms.Requests, ms.Errors, ms.P99, want[ms.Method])
		}
		delete(want, ms.Method)
	}
	if len(want) != 0 {
		t.Errorf("methods never counted: %v", want)
	}
}
