package service_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sim"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/challenge"
	"github.com/medicus-cloud/trust/ear"
	"github.com/medicus-cloud/trust/ear/issuer"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/release"
	"github.com/medicus-cloud/trust/sdk"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/secret"
	"github.com/medicus-cloud/trust/service"
)

// memAudit records in memory; fail makes every append fail, as an unwritable log would.
type memAudit struct {
	mu      sync.Mutex
	records []*audit.Record
	fail    bool
}

func (m *memAudit) Append(_ context.Context, r *audit.Record) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return 0, errors.New("disk full")
	}
	m.records = append(m.records, r)
	return uint64(len(m.records) - 1), nil
}

func (m *memAudit) last() *audit.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.records[len(m.records)-1]
}

func helloMeasurement() []byte {
	m := make([]byte, 48)
	copy(m, "medicus trust example hello image v1")
	return m
}

// swappable is a policy source whose bundle a test can replace, as a reload does.
type swappable struct {
	b atomic.Pointer[policies.Bundle]
}

func (s *swappable) Current() *policies.Bundle { return s.b.Load() }

type harness struct {
	policies *swappable
	conn     *grpc.ClientConn
	rpc      pb.TrustClient
	audit    *memAudit
	keys     *local.Keyring
	tokens   *issuer.Issuer
	now      *time.Time
	ctxKey   *audit.ContextKey
	svc      *service.Service
}

func start(t testing.TB) *harness { return startWith(t, nil) }

// startWith starts trustd on loopback; store replaces the local keyring when not nil.
func startWith(t testing.TB, store kms.KeyStore) *harness { return startFull(t, store, nil) }

// startFull also lets log replace the in-memory audit log.
func startFull(t testing.TB, store kms.KeyStore, log service.AuditLog) *harness {
	t.Helper()
	return startCustom(t, store, log, nil)
}

// startCustom also lets configure change the service's options last.
func startCustom(t testing.TB, store kms.KeyStore, log service.AuditLog, configure func(*service.Options)) *harness {
	t.Helper()
	ctx := context.Background()
	keys, err := local.Open(local.Options{Path: filepath.Join(t.TempDir(), "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{9}, 32))})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"hello/records", "hello/tenant-records"} {
		if err := keys.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := keys.PutSecret(ctx, "hello/api-token", secret.New([]byte("s3cr3t-api-token"))); err != nil {
		t.Fatal(err)
	}
	bundle, err := policies.Parse(map[string][]byte{"hello.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: hello}
spec:
  tee: [insecure-simulated]
  measurements: ["` + attest.Hex(helloMeasurement()).String() + `"]
  grants:
    secrets: [hello/api-token, hello/missing-secret]
    dataKeys:
      - hello/records
      - name: hello/tenant-records
        context: {tenant: [uk-freiburg, uk-ulm]}
`)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h := &harness{audit: &memAudit{}, keys: keys, now: &now}
	var ks kms.KeyStore = keys
	if store != nil {
		ks = store
	}
	var auditLog service.AuditLog = h.audit
	if log != nil {
		auditLog = log
	}
	clock := func() time.Time { return *h.now }
	nonces, _ := challenge.New(challenge.Options{Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}, Now: clock})
	tk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h.tokens, _ = issuer.New(issuer.Options{Key: tk, Now: clock})
	h.policies = &swappable{}
	h.policies.b.Store(bundle)
	h.ctxKey, _ = audit.NewContextKey(bytes.Repeat([]byte{5}, audit.ContextKeySize))
	o := service.Options{
		Verifiers: []attest.Verifier{sim.NewInsecureVerifier()},
		Policies:  h.policies, Keys: ks, Audit: auditLog,
		Nonces: nonces, Tokens: h.tokens, Now: clock, ContextKey: h.ctxKey,
	}
	if configure != nil {
		configure(&o)
	}
	svc, err := service.New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterTrustServer(srv, svc)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	h.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.conn.Close() })
	h.rpc = pb.NewTrustClient(h.conn)
	return h
}

func (h *harness) client(t *testing.T, p enclave.Provider) *sdk.Client {
	c, err := sdk.New(context.Background(), sdk.Options{Conn: h.conn, Provider: p, Now: func() time.Time { return *h.now }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func hello() enclave.Provider {
	return simguest.NewInsecure(simguest.Options{Measurement: helloMeasurement(), SVN: 1})
}

func TestAllowPath(t *testing.T) {
	ctx := context.Background()
	for _, suite := range []seal.Suite{seal.X25519, seal.MLKEM768X25519} {
		t.Run(suite.String(), func(t *testing.T) {
			h := start(t)
			c, _ := sdk.New(ctx, sdk.Options{Conn: h.conn, Provider: hello(), Suite: suite})
			att, err := c.Attest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if att.Policy != "hello" || len(att.Grants) != 4 || att.Claims.TEE != attest.InsecureSimulated {
				t.Fatalf("attestation %+v", att)
			}
			s, err := c.Secret(ctx, "hello/api-token")
			if err != nil || string(s.Reveal()) != "s3cr3t-api-token" {
				t.Fatalf("Secret = %v", err)
			}
			kc := kms.Context{"tenant": "uk-freiburg", "case": "42"}
			dek, wrapped, err := c.GenerateDataKey(ctx, "hello/records", kc)
			if err != nil || dek.Len() != 32 {
				t.Fatalf("GenerateDataKey = %v", err)
			}
			again, err := c.UnwrapDataKey(ctx, "hello/records", wrapped, kc)
			if err != nil || !again.Equal(dek) {
				t.Fatalf("UnwrapDataKey = %v", err)
			}
			// Every decision is audited, and no record holds the secret.
			if n := len(h.audit.records); n != 4 {
				t.Fatalf("%d audit records, want 4", n)
			}
			// The context digest is keyed with the deployment's context key, per tenant.
			canon, _ := kc.Canonical()
			want := h.ctxKey.Digest("uk-freiburg", canon)
			if got := h.audit.records[2].ContextDigest; got != want {
				t.Errorf("data-key record's context digest %s, want %s", got, want)
			}
			for _, r := range h.audit.records {
				if r.Verdict != audit.VerdictAllow || r.RequestID == "" {
					t.Errorf("record %+v", r)
				}
				if strings.Contains(r.Reason+strings.Join(r.Names, ","), "s3cr3t") {
					t.Error("secret in audit record")
				}
			}
		})
	}
}

func TestTokenCachedAndRenewed(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	c := h.client(t, hello())
	for range 3 {
		if _, err := c.Secret(ctx, "hello/api-token"); err != nil {
			t.Fatal(err)
		}
	}
	attests := func() int {
		n := 0
		for _, r := range h.audit.records {
			if r.Event == audit.EventAttest {
				n++
			}
		}
		return n
	}
	if attests() != 1 {
		t.Fatalf("%d attestations for 3 releases, want 1", attests())
	}
	*h.now = h.now.Add(issuer.DefaultLifetime)
	if _, err := c.Secret(ctx, "hello/api-token"); err != nil {
		t.Fatal(err)
	}
	if attests() != 2 {
		t.Fatalf("no re-attestation after expiry")
	}
}

func TestDenials(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	tampered := helloMeasurement()
	tampered[0] ^= 0xff
	_, err := h.client(t, simguest.NewInsecure(simguest.Options{Measurement: tampered})).Attest(ctx)
	var d *sdk.DeniedError
	if !errors.As(err, &d) || d.Claim != "measurement" || d.Seen != attest.Hex(tampered).String() {
		t.Fatalf("tampered measurement: %v", err)
	}
	if r := h.audit.last(); r.Verdict != audit.VerdictDeny || r.Measurement != attest.Hex(tampered).String() {
		t.Fatalf("denial not audited: %+v", r)
	}
	_, err = h.client(t, simguest.NewInsecure(simguest.Options{Measurement: helloMeasurement(), Debug: true})).Attest(ctx)
	if !errors.As(err, &d) || d.Claim != "debug" {
		t.Fatalf("debug: %v", err)
	}
}

// attestRaw attests over the raw API so that tests can break single fields.
func (h *harness) attestRaw(t *testing.T, mutate func(req *pb.AttestRequest, key *enclave.Key)) (*pb.AttestResponse, *enclave.Key, error) {
	t.Helper()
	ctx := context.Background()
	ch, err := h.rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := enclave.NewKey(seal.X25519)
	ev, _ := hello().Evidence(ctx, key.ReportData(ch.GetNonce()))
	req := &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: wire.EvidenceToPB(ev), WorkloadKey: wire.WorkloadKeyToPB(key.Public())}
	if mutate != nil {
		mutate(req, key)
	}
	resp, err := h.rpc.Attest(ctx, req)
	return resp, key, err
}

func TestAttestBadInput(t *testing.T) {
	h := start(t)
	other, _ := enclave.NewKey(seal.X25519)
	otherNonces, _ := challenge.New(challenge.Options{Keys: [][]byte{bytes.Repeat([]byte{2}, 32)}})
	forgedNonce, _, _ := otherNonces.Issue()
	tests := []struct {
		name   string
		mutate func(req *pb.AttestRequest, key *enclave.Key)
		code   codes.Code
		msg    string
	}{
		{"forged nonce", func(r *pb.AttestRequest, _ *enclave.Key) { r.Nonce = forgedNonce }, codes.Unauthenticated, "nonce"},
		{"missing nonce", func(r *pb.AttestRequest, _ *enclave.Key) { r.Nonce = nil }, codes.Unauthenticated, "nonce"},
		{"nonce bound to another key", func(r *pb.AttestRequest, _ *enclave.Key) { r.WorkloadKey = wire.WorkloadKeyToPB(other.Public()) }, codes.PermissionDenied, "report_data"},
		{"missing evidence", func(r *pb.AttestRequest, _ *enclave.Key) { r.Evidence = nil }, codes.InvalidArgument, "evidence: missing"},
		{"truncated report", func(r *pb.AttestRequest, _ *enclave.Key) { r.Evidence.Report = r.Evidence.Report[:50] }, codes.InvalidArgument, "report"},
		{"oversized report", func(r *pb.AttestRequest, _ *enclave.Key) { r.Evidence.Report = make([]byte, service.MaxReportSize+1) }, codes.InvalidArgument, "evidence.report"},
		{"flipped signature", func(r *pb.AttestRequest, _ *enclave.Key) { r.Evidence.Report[len(r.Evidence.Report)-1] ^= 1 }, codes.PermissionDenied, "report.signature"},
		{"unknown tee", func(r *pb.AttestRequest, _ *enclave.Key) { r.Evidence.Tee = 99 }, codes.InvalidArgument, "evidence.tee"},
		{"tee without verifier", func(r *pb.AttestRequest, _ *enclave.Key) { r.Evidence.Tee = pb.TEE_TEE_SEV_SNP }, codes.InvalidArgument, "evidence.tee"},
		{"missing key", func(r *pb.AttestRequest, _ *enclave.Key) { r.WorkloadKey = nil }, codes.InvalidArgument, "workload_key"},
		{"weak suite", func(r *pb.AttestRequest, _ *enclave.Key) { r.WorkloadKey.Aead = 1 }, codes.InvalidArgument, "workload_key"},
		{"bad key bytes", func(r *pb.AttestRequest, _ *enclave.Key) { r.WorkloadKey.PublicKey = []byte{1} }, codes.InvalidArgument, "workload_key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := h.attestRaw(t, tc.mutate)
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
	t.Run("expired nonce", func(t *testing.T) {
		_, _, err := h.attestRaw(t, func(*pb.AttestRequest, *enclave.Key) { *h.now = h.now.Add(challenge.MaxLifetime) })
		*h.now = time.Now()
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestReleaseBadInput(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	resp, key, err := h.attestRaw(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := resp.GetToken()
	foreignKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign, _ := issuer.New(issuer.Options{Key: foreignKey})
	forged, _, _ := foreign.Issue(&ear.Claims{Grants: []release.Grant{{Kind: release.GrantSecret, Name: "hello/api-token"}}})
	tests := []struct {
		name string
		req  *pb.GetSecretRequest
		code codes.Code
		msg  string
	}{
		{"no token", &pb.GetSecretRequest{Name: "hello/api-token"}, codes.Unauthenticated, "token"},
		{"forged token", &pb.GetSecretRequest{Token: forged, Name: "hello/api-token"}, codes.Unauthenticated, "unknown key"},
		{"flipped token", &pb.GetSecretRequest{Token: flip(tok), Name: "hello/api-token"}, codes.Unauthenticated, "token"},
		{"not granted", &pb.GetSecretRequest{Token: tok, Name: "other/secret"}, codes.PermissionDenied, "grants"},
		{"data key name as secret", &pb.GetSecretRequest{Token: tok, Name: "hello/records"}, codes.PermissionDenied, "grants"},
		{"granted but missing", &pb.GetSecretRequest{Token: tok, Name: "hello/missing-secret"}, codes.NotFound, "not found"},
		{"path escape", &pb.GetSecretRequest{Token: tok, Name: "hello/../other"}, codes.InvalidArgument, "name"},
		{"bad request id", &pb.GetSecretRequest{Token: tok, Name: "hello/api-token", RequestId: "a b"}, codes.InvalidArgument, "request_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.rpc.GetSecret(ctx, tc.req)
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
	t.Run("expired token", func(t *testing.T) {
		*h.now = h.now.Add(issuer.DefaultLifetime)
		defer func() { *h.now = time.Now() }()
		_, err := h.rpc.GetSecret(ctx, &pb.GetSecretRequest{Token: tok, Name: "hello/api-token"})
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("wrong context", func(t *testing.T) {
		g, err := h.rpc.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "hello/records", Context: map[string]string{"case": "1"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = h.rpc.UnwrapDataKey(ctx, &pb.UnwrapDataKeyRequest{Token: tok, KeyName: "hello/records", WrappedKey: g.GetWrappedKey(), Context: map[string]string{"case": "2"}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "wrapped key") {
			t.Fatalf("got %v", err)
		}
		_, err = h.rpc.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "hello/records", Context: map[string]string{"Bad Key": "1"}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "context") {
			t.Fatalf("got %v", err)
		}
	})
	// A token stolen by another workload releases nothing it can open: the release is sealed
	// to the key in the token, which only the attested workload holds.
	t.Run("stolen token", func(t *testing.T) {
		r, err := h.rpc.GetSecret(ctx, &pb.GetSecretRequest{Token: tok, Name: "hello/api-token", RequestId: "r1"})
		if err != nil {
			t.Fatal(err)
		}
		canon, _ := kms.Context(nil).Canonical()
		aad := seal.ReleaseAAD("r1", "hello/api-token", canon)
		thief, _ := enclave.NewKey(seal.X25519)
		if _, err := thief.Open(aad, r.GetSecret().GetCiphertext()); err == nil {
			t.Fatal("another key opened the release")
		}
		pt, err := key.Open(aad, r.GetSecret().GetCiphertext())
		if err != nil || string(pt) != "s3cr3t-api-token" {
			t.Fatalf("owner cannot open: %v", err)
		}
	})
}

func TestGrantContextConstraints(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	c := h.client(t, hello())
	if _, _, err := c.GenerateDataKey(ctx, "hello/tenant-records", kms.Context{"tenant": "uk-ulm", "case": "7"}); err != nil {
		t.Fatalf("allowed tenant: %v", err)
	}
	for _, kc := range []kms.Context{{"tenant": "elsewhere"}, {"case": "7"}, nil} {
		_, _, err := c.GenerateDataKey(ctx, "hello/tenant-records", kc)
		var d *sdk.DeniedError
		if !errors.As(err, &d) || d.Claim != "context.tenant" {
			t.Errorf("context %v: %v, want a denial on context.tenant", kc, err)
		}
	}
	if r := h.audit.last(); r.Verdict != audit.VerdictDeny {
		t.Fatalf("refused release audited as %q", r.Verdict)
	}
}

func TestReloadDroppingImageStopsReleases(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	c := h.client(t, hello())
	if _, err := c.Secret(ctx, "hello/api-token"); err != nil {
		t.Fatal(err)
	}
	other, err := policies.Parse(map[string][]byte{"other.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: hello}
spec:
  tee: [insecure-simulated]
  measurements: ["` + strings.Repeat("ee", 48) + `"]
  grants: {secrets: [hello/api-token]}
`)})
	if err != nil {
		t.Fatal(err)
	}
	h.policies.b.Store(other)
	_, err = c.Secret(ctx, "hello/api-token")
	var d *sdk.DeniedError
	if !errors.As(err, &d) || d.Claim != "measurement" {
		t.Fatalf("release after the image was dropped: %v", err)
	}
}

func TestAuditUnavailableReleasesNothing(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	resp, _, err := h.attestRaw(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.audit.fail = true
	r, err := h.rpc.GetSecret(ctx, &pb.GetSecretRequest{Token: resp.GetToken(), Name: "hello/api-token"})
	if status.Code(err) != codes.Unavailable || r != nil {
		t.Fatalf("got %v, %v", r, err)
	}
	_, _, err = h.attestRaw(t, nil)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("attest with a broken log: %v", err)
	}
}

// downStore is a key store whose backend is unreachable.
type downStore struct{}

func (downStore) GenerateDataKey(context.Context, kms.Bound) (*kms.DataKey, error) {
	return nil, kms.ErrUnavailable
}
func (downStore) UnwrapDataKey(context.Context, kms.Bound, []byte) (*secret.Bytes, error) {
	return nil, kms.ErrUnavailable
}
func (downStore) GetSecret(context.Context, string) (*kms.Secret, error) {
	return nil, kms.ErrUnavailable
}

func TestKeyStoreUnavailable(t *testing.T) {
	ctx := context.Background()
	h := startWith(t, downStore{})
	resp, _, err := h.attestRaw(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.rpc.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: resp.GetToken(), KeyName: "hello/records"})
	if status.Code(err) != codes.Unavailable || r != nil {
		t.Fatalf("got %v, %v", r, err)
	}
	if rec := h.audit.last(); rec.Verdict != audit.VerdictError {
		t.Fatalf("failed release audited as %q", rec.Verdict)
	}
}

func flip(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 1
	return c
}

// A workload key that no HPKE seal can use (an X25519 low-order point) fails the release as
// InvalidArgument naming workload_key, with nothing released and the refusal in the log, rather
// than as an Internal error. (Attest does not try an encapsulation on every request to find it
// sooner.)
func TestLowOrderWorkloadKey(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	ch, err := h.rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 32)
	rd := attest.ReportData(ch.GetNonce(), seal.X25519.ID(), zero)
	ev, err := hello().Evidence(ctx, rd)
	if err != nil {
		t.Fatal(err)
	}
	wk := &pb.WorkloadKey{Kem: uint32(seal.KEMX25519), Kdf: uint32(seal.KDFHKDFSHA256), Aead: uint32(seal.AEADAES256GCM), PublicKey: zero}
	at, err := h.rpc.Attest(ctx, &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: wire.EvidenceToPB(ev), WorkloadKey: wk})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.rpc.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: at.GetToken(), KeyName: "hello/records"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "workload_key") || resp != nil {
		t.Fatalf("got %v, %v; want InvalidArgument naming workload_key", resp, err)
	}
	if r := h.audit.last(); r.Event != audit.EventGenerateDataKey || r.Verdict == audit.VerdictAllow {
		t.Errorf("audit record %+v", r)
	}
}
