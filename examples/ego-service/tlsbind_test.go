package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sgx/sgxtest"
	"github.com/medicus-cloud/trust/enclave/ego"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/sdk"
)

// testCA is a certificate authority for client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func (ca *testCA) client(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serviceEnv is the service running as it does in the enclave (serve, with the attested TLS key
// and mutual TLS) on a fake SGX platform, attested to an in-process trustd.
type serviceEnv struct {
	url      string
	addr     string
	platform *sgxtest.Platform
	enclave  sgxtest.Enclave
	id       *tlsIdentity
	hospital tls.Certificate // a client certificate of the hospitals' CA
	ca       *testCA
	t        *testing.T
}

func startService(t *testing.T) *serviceEnv {
	t.Helper()
	p := sgxtest.NewPlatform(t)
	e := sgxtest.DefaultEnclave()
	conn := startTrustd(t, p, signerPolicy(e))
	prov := ego.NewWithReportFunc(fakeEGo(t, p, e))
	c, err := sdk.New(context.Background(), sdk.Options{Conn: conn, Provider: prov, Now: func() time.Time { return sgxtest.Now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	id, err := newTLSIdentity(context.Background(), prov, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, "hospital client CA")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := &config{KeyName: "ego-service/records", Tenant: "st-marien"}
	go func() { done <- serve(ctx, cfg, c, id, ca.pool(), ln, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return &serviceEnv{
		url: "https://" + ln.Addr().String(), addr: ln.Addr().String(), platform: p, enclave: e, id: id,
		hospital: ca.client(t, "uk-freiburg records client"), ca: ca, t: t,
	}
}

// check is what a hospital client configures: Intel's root (here the fake platform's), and the
// same policy trustd applies.
func (env *serviceEnv) check(policy string) ServiceCheck {
	env.t.Helper()
	bundle, err := policies.Parse(map[string][]byte{"ego-service.yaml": []byte(policy)})
	if err != nil {
		env.t.Fatal(err)
	}
	return ServiceCheck{
		Verifier: sgxVerifier(env.t, env.platform),
		Approve:  func(c *attest.Claims) error { _, err := bundle.Evaluate(c); return err },
		Now:      func() time.Time { return sgxtest.Now },
	}
}

// Plaintext HTTP, TLS without a client certificate and a client certificate of another CA are
// all refused before any record is read; only the hospital's client gets the record.
func TestOnlyAuthenticatedTLSClientsGetRecords(t *testing.T) {
	env := startService(t)
	client, err := hospitalClient(context.Background(), env.url, env.hospital, env.check(signerPolicy(env.enclave)))
	if err != nil {
		t.Fatal(err)
	}
	const record = "Patient 4711: troponin 52 ng/l"
	req, _ := http.NewRequest("PUT", env.url+"/records/4711", strings.NewReader(record))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT: %s", resp.Status)
	}

	get := func(c *http.Client, url string) (string, error) {
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return string(b), fmt.Errorf("%s", resp.Status)
		}
		return string(b), nil
	}
	noVerify := func(certs ...tls.Certificate) *http.Client {
		conf := &tls.Config{InsecureSkipVerify: true}
		if len(certs) > 0 {
			// Sent whatever CAs the server asks for.
			conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
	}
	rogue := newTestCA(t, "rogue CA").client(t, "uk-freiburg records client")

	for _, tt := range []struct {
		name   string
		client *http.Client
		url    string
	}{
		{"plaintext http", http.DefaultClient, "http://" + env.addr + "/records/4711"},
		{"tls without client certificate", noVerify(), env.url + "/records/4711"},
		{"client certificate of another CA", noVerify(rogue), env.url + "/records/4711"},
		{"attestation without client certificate", noVerify(), env.url + "/attestation"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := get(tt.client, tt.url)
			if err == nil {
				t.Fatalf("served: %q", body)
			}
			if strings.Contains(body, "troponin") {
				t.Fatalf("record sent to an unauthenticated caller: %q", body)
			}
		})
	}

	// A raw plaintext request on the socket gets nothing but the TLS server's refusal.
	conn, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /records/4711 HTTP/1.1\r\nHost: x\r\n\r\n")
	raw, _ := io.ReadAll(bufio.NewReader(conn))
	conn.Close()
	if strings.Contains(string(raw), "troponin") || !strings.Contains(string(raw), "400") {
		t.Fatalf("plaintext request answered %q", raw)
	}

	if body, err := get(client, env.url+"/records/4711"); err != nil || body != record {
		t.Fatalf("hospital client: %q, %v", body, err)
	}
}

// A server whose TLS key is not the attested one (a host replaying the enclave's quote in front
// of its own key) is refused by the hospital client, as is an enclave the policy does not approve.
func TestHospitalClientChecksBinding(t *testing.T) {
	env := startService(t)

	// The host's server: its own TLS key, the enclave's genuine attestation document.
	impostorID, err := newTLSIdentity(context.Background(), ego.NewWithReportFunc(fakeEGo(t, env.platform, env.enclave)), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	impostor := httptest.NewUnstartedServer(newHandler(nil, "k", "t", env.id.doc))
	impostor.TLS = impostorID.serverTLS(env.ca.pool())
	impostor.StartTLS()
	defer impostor.Close()

	check := env.check(signerPolicy(env.enclave))
	if _, err := hospitalClient(context.Background(), impostor.URL, env.hospital, check); !errors.Is(err, errNotBound) {
		t.Fatalf("impostor with a replayed quote: %v, want errNotBound", err)
	}

	// Pinned to the enclave's key, the client refuses the impostor's before sending anything.
	client, err := hospitalClient(context.Background(), env.url, env.hospital, check)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get(impostor.URL + "/records/4711"); !errors.Is(err, errNotBound) {
		t.Fatalf("pinned client to another key: %v", err)
	}

	// A policy that does not approve this enclave (it wants a newer SVN) stops the client.
	strict := strings.Replace(signerPolicy(env.enclave), "minSVN: 3", "minSVN: 9", 1)
	if _, err := hospitalClient(context.Background(), env.url, env.hospital, env.check(strict)); err == nil || !strings.Contains(err.Error(), "not approved") {
		t.Fatalf("unapproved enclave: %v", err)
	}
}

// The handler itself refuses requests that did not come with a verified client certificate,
// whatever listener it is mounted on.
func TestHandlerRefusesUnauthenticated(t *testing.T) {
	srv := httptest.NewServer(newHandler(nil, "k", "t", []byte(`{}`)))
	defer srv.Close()
	for _, path := range []string{"/records/4711", "/attestation", "/healthz"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s over plain HTTP: %s", path, resp.Status)
		}
	}
}

// The binding as the README specifies it, for clients in other languages: a fixed 91-byte
// SubjectPublicKeyInfo-sized input (0x30 repeated) and its report data.
func TestTLSReportDataVector(t *testing.T) {
	got := tlsReportData(bytes.Repeat([]byte{0x30}, 91))
	const want = "9c6f04e1a4733612984617969d6201e43b123afcccd6b8792ddae9713d7ee8eb9c03e29000aefb57e14520552f6a0151df67d1573ebe7d4d7d459a3c960ec3a5"
	if hex.EncodeToString(got[:]) != want {
		t.Fatalf("report data %x, want %s", got, want)
	}
}
