package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sgx"
	"github.com/medicus-cloud/trust/attest/sgx/sgxtest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/ego"
	"github.com/medicus-cloud/trust/internal/trustdtest"
	"github.com/medicus-cloud/trust/sdk"
	"github.com/medicus-cloud/trust/service"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults and tenant", []string{"-tenant", "st-marien"}, ""},
		{"all", []string{"-tenant", "t", "-trustd", "10.0.0.5:7443", "-listen", "127.0.0.1:9000", "-key", "k", "-ca", "/ca.pem"}, ""},
		{"no tenant", nil, "-tenant is required"},
		{"bad trustd", []string{"-tenant", "t", "-trustd", "trustd"}, "-trustd"},
		{"bad listen", []string{"-tenant", "t", "-listen", "8443"}, "-listen"},
		{"empty ca", []string{"-tenant", "t", "-ca", ""}, "-ca is required"},
		{"empty key", []string{"-tenant", "t", "-key", ""}, "-key must not be empty"},
		{"empty client ca", []string{"-tenant", "t", "-client-ca", ""}, "-client-ca is required"},
		{"unknown flag", []string{"-tenant", "t", "-insecure"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := parseFlags(tt.args, &stderr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(stderr.String()+err.Error(), tt.wantErr) {
				t.Fatalf("error %v (stderr %q), want %q", err, stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	p := sgxtest.NewPlatform(t)
	good := filepath.Join(dir, "ca.pem")
	os.WriteFile(good, sgxtest.PEMChain(p.Root), 0o600)
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	if _, err := (&config{CAFile: good}).tlsConfig(); err != nil {
		t.Fatal(err)
	}
	if _, err := (&config{CAFile: bad}).tlsConfig(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("bad CA: %v", err)
	}
	if _, err := (&config{CAFile: filepath.Join(dir, "missing")}).tlsConfig(); err == nil {
		t.Fatal("missing CA accepted")
	}
}

// Outside an enclave (and built without the ego tag) the service stops before any network use,
// saying why, with an error the exit code maps from.
func TestRunOutsideEnclave(t *testing.T) {
	err := run(context.Background(), &config{Trustd: "127.0.0.1:1", CAFile: "/nonexistent", ClientCAFile: "/nonexistent", Listen: ":0", KeyName: "k", Tenant: "t"}, io.Discard)
	if !errors.Is(err, enclave.ErrNoTEE) {
		t.Fatalf("run outside an enclave: %v", err)
	}
}

func TestCaseID(t *testing.T) {
	for _, ok := range []string{"4711", "case-7_b", strings.Repeat("a", 64)} {
		if _, err := caseID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "../etc", "a b", strings.Repeat("a", 65), "ä"} {
		if _, err := caseID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A fake EGo runtime on a fake SGX platform, an in-process trustd with the SGX verifier trusting
// that platform's root, and this service's records API: the enclave attests and gets its data
// keys exactly like a confidential VM.

type memAudit struct {
	mu sync.Mutex
	n  uint64
}

func (m *memAudit) Append(context.Context, *audit.Record) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	return m.n, nil
}

// fakeEGo stands in for EGo's GetRemoteReport: the quote behind Open Enclave's report header.
func fakeEGo(t *testing.T, p *sgxtest.Platform, e sgxtest.Enclave) ego.ReportFunc {
	return func(rd []byte) ([]byte, error) {
		var d [64]byte
		copy(d[:], rd)
		q := p.Quote(t, e, d, sgxtest.QuoteOptions{Version: 3, AuthData: []byte("qe")})
		h := make([]byte, ego.ReportHeaderSize)
		binary.LittleEndian.PutUint32(h[0:], 1)
		binary.LittleEndian.PutUint32(h[4:], 2)
		binary.LittleEndian.PutUint64(h[8:], uint64(len(q)))
		return append(h, q...), nil
	}
}

func startTrustd(t *testing.T, p *sgxtest.Platform, policy string) grpc.ClientConnInterface {
	t.Helper()
	td := trustdtest.StartTB(t, trustdtest.Options{
		Policy:   map[string][]byte{"ego-service.yaml": []byte(policy)},
		DataKeys: []string{"ego-service/records"},
		Audit:    &memAudit{},
		Now:      func() time.Time { return sgxtest.Now },
		Service:  func(o *service.Options) { o.Verifiers = []attest.Verifier{sgxVerifier(t, p)} },
	})
	conn, err := grpc.NewClient(td.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// sgxVerifier verifies quotes of p with collateral as `trustctl collateral fetch --tee sgx` would
// leave it: policies want a TCB status, which takes Intel's TCB info and QE identity.
func sgxVerifier(t *testing.T, p *sgxtest.Platform) *sgx.Verifier {
	t.Helper()
	collDir := t.TempDir()
	for name, b := range p.Collateral(t, sgxtest.CollateralOptions{}) {
		if err := os.WriteFile(filepath.Join(collDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	verifier, err := sgx.New(sgx.Options{Root: p.Root, CollateralDir: collDir})
	if err != nil {
		t.Fatal(err)
	}
	return verifier
}

func signerPolicy(e sgxtest.Enclave) string {
	return `
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: ego-service}
spec:
  tee: [sgx]
  sgxSigner: {mrsigner: "` + hex.EncodeToString(e.MRSIGNER[:]) + `", productID: 7, minSVN: 3}
  grants:
    dataKeys: [ego-service/records]
`
}

func TestEnclaveAttestsAndStoresRecords(t *testing.T) {
	env := startService(t)
	client, err := hospitalClient(context.Background(), env.url, env.hospital, env.check(signerPolicy(env.enclave)))
	if err != nil {
		t.Fatal(err)
	}
	record := "Patient 4711: troponin 52 ng/l"
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, env.url+path, strings.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("PUT", "/records/4711", record); code != http.StatusNoContent {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, body := do("GET", "/records/4711", ""); code != http.StatusOK || body != record {
		t.Fatalf("GET: %d %q", code, body)
	}
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/records/4712", http.StatusNotFound},
		{"GET", "/records/a%20b", http.StatusBadRequest},
		{"GET", "/healthz", http.StatusOK},
	} {
		if code, body := do(tt.method, tt.path, ""); code != tt.want {
			t.Errorf("%s %s: %d %s, want %d", tt.method, tt.path, code, body, tt.want)
		}
	}
}

func TestEnclaveDenied(t *testing.T) {
	p := sgxtest.NewPlatform(t)
	good := sgxtest.DefaultEnclave()
	debug := good
	debug.Flags |= sgx.AttributeDebug
	oldSVN := good
	oldSVN.SVN = 2
	for _, tt := range []struct {
		name string
		e    sgxtest.Enclave
		want string
	}{
		{"debug enclave", debug, "debug"},
		{"old svn", oldSVN, "isv_svn"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := startTrustd(t, p, signerPolicy(good))
			c, err := sdk.New(context.Background(), sdk.Options{Conn: conn, Provider: ego.NewWithReportFunc(fakeEGo(t, p, tt.e)), Now: func() time.Time { return sgxtest.Now }})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Attest(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("attest: %v, want a denial naming %q", err, tt.want)
			}
		})
	}
}

// enclave.json is what `ego sign` reads; keep it a production configuration.
func TestEnclaveJSON(t *testing.T) {
	b, err := os.ReadFile("enclave.json")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Exe             string `json:"exe"`
		Key             string `json:"key"`
		Debug           bool   `json:"debug"`
		HeapSize        int    `json:"heapSize"`
		ExecutableHeap  bool   `json:"executableHeap"`
		ProductID       int    `json:"productID"`
		SecurityVersion int    `json:"securityVersion"`
		Mounts          []struct {
			Source, Target, Type string
			ReadOnly             bool `json:"readOnly"`
		} `json:"mounts"`
		Env []struct {
			Name, Value string
			FromHost    bool `json:"fromHost"`
		} `json:"env"`
		Files []struct{ Source, Target string } `json:"files"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&conf); err != nil {
		t.Fatal(err)
	}
	switch {
	case conf.Debug:
		t.Error("debug enclave: trustd refuses it and the host could read patient data")
	case conf.ExecutableHeap:
		t.Error("executable heap is not needed")
	case conf.HeapSize < 512:
		t.Errorf("heapSize %d MB, EGo wants at least 512", conf.HeapSize)
	case conf.ProductID != 7 || conf.SecurityVersion < 3:
		t.Errorf("productID %d / securityVersion %d do not match the README's policy", conf.ProductID, conf.SecurityVersion)
	}
	for _, m := range conf.Mounts {
		if m.Type == "hostfs" {
			t.Errorf("hostfs mount %s: the host would see the enclave's files", m.Target)
		}
	}
	for _, e := range conf.Env {
		if e.FromHost {
			t.Errorf("environment variable %s from the host is untrusted input", e.Name)
		}
	}
	ca, clientCA := false, false
	for _, f := range conf.Files {
		ca = ca || f.Target == "/etc/medicus/trustd-ca.pem"
		clientCA = clientCA || f.Target == "/etc/medicus/hospital-client-ca.pem"
	}
	if !ca {
		t.Error("trustd's CA must be embedded (files) at the path -ca defaults to")
	}
	if !clientCA {
		t.Error("the hospitals' client CA must be embedded (files) at the path -client-ca defaults to")
	}
}
