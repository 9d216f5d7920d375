package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/consent"
	"github.com/medicus-cloud/trust/consent/consenttest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/replay"
	"github.com/medicus-cloud/trust/report"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/service"
)

const consentPolicy = `apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: hello}
spec:
  tee: [insecure-simulated]
  measurements: [6d656469637573207472757374206578616d706c652068656c6c6f20696d616765207631000000000000000000000000]
  require: {minTCB: {guest_svn: 1}}
  grants:
    dataKeys:
      - name: hello/patient-records
        context: {tenant: [uk-freiburg, uk-ulm]}
        consent:
          purposes: [treatment]
          patientField: patient
          breakGlass: {maxDuration: 30m}
`

// dutiesEnv is a real trustd (dev mode for the simulated TEE) with TLS and an admin CA.
type dutiesEnv struct {
	addr   string
	roots  *x509.CertPool
	admins *testCA
	data   string
	d      *Daemon
}

// publish makes the audit log's directory show every record acknowledged so far (the local log
// publishes its tiles in the background).
func (e *dutiesEnv) publish(t *testing.T) {
	t.Helper()
	if p, ok := e.d.auditLg.(interface{ Publish(context.Context) error }); ok {
		if err := p.Publish(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func startDuties(t *testing.T) *dutiesEnv {
	t.Helper()
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.Mkdir(pol, 0o700)
	write(t, pol, "hello.yaml", consentPolicy)
	ca, admins := newCA(t, "server CA"), newCA(t, "admin CA")
	sc, sk := ca.issue(t, "trustd", "", true)
	// The scenario makes many calls from one loopback address (workloads and admins alike); the
	// per-peer rate limit is not what it tests.
	cfg := &Config{Dev: true, DataDir: filepath.Join(dir, "data"), Policy: pol, Listen: "127.0.0.1:0",
		Limits: LimitsConfig{Rate: 1000, Burst: 1000},
		TLS: TLSConfig{CertFile: write(t, dir, "server.pem", string(sc)), KeyFile: write(t, dir, "server.key", string(sk)),
			ClientCAFile: write(t, dir, "admin-ca.pem", string(admins.pem))}}
	d, err := New(context.Background(), cfg, Env{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	return &dutiesEnv{addr: serve(t, d), roots: roots, admins: admins, data: cfg.DataDir, d: d}
}

func (e *dutiesEnv) dial(t *testing.T, certs ...tls.Certificate) *grpc.ClientConn {
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: e.roots, Certificates: certs, MinVersion: tls.VersionTLS13})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// admin is an admin client for person (the certificate's CN) in role.
func (e *dutiesEnv) admin(t *testing.T, person, role string) pb.AdminClient {
	cp, kp := e.admins.issue(t, person, role, false)
	cert, err := tls.X509KeyPair(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	return pb.NewAdminClient(e.dial(t, cert))
}

// token attests the hello workload and returns its result token.
func (e *dutiesEnv) token(t *testing.T) []byte {
	t.Helper()
	ctx := context.Background()
	rpc := pb.NewTrustClient(e.dial(t))
	ch, err := rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := hex.DecodeString("6d656469637573207472757374206578616d706c652068656c6c6f20696d616765207631")
	key, _ := enclave.NewKey(seal.X25519)
	ev, err := simguest.NewInsecure(simguest.Options{Measurement: m, SVN: 1}).Evidence(ctx, key.ReportData(ch.GetNonce()))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rpc.Attest(ctx, &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: wire.EvidenceToPB(ev), WorkloadKey: wire.WorkloadKeyToPB(key.Public())})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetToken()
}

func wantCode(t *testing.T, what string, err error, code codes.Code, claim string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %v", what, err, code)
	}
	if claim != "" {
		if d := service.DenialOf(err); d == nil || d.GetClaim() != claim {
			t.Fatalf("%s: denial %v, want claim %s", what, d, claim)
		}
	}
}

// TestPatientDutiesEndToEnd drives consent, withdrawal, break-glass and shredding through a
// real trustd over gRPC with mutual TLS, with every bad input of issue 20 on the way.
func TestPatientDutiesEndToEnd(t *testing.T) {
	ctx := context.Background()
	e := startDuties(t)
	opA, opB := e.admin(t, "alice", "operator"), e.admin(t, "bob", "operator")
	if _, err := opA.CreateKey(ctx, &pb.CreateKeyRequest{Name: "hello/patient-records"}); err != nil {
		t.Fatal(err)
	}
	ufr, ulm := consenttest.New("uk-freiburg", "ufr-1"), consenttest.New("uk-ulm", "ulm-1")
	ca := e.admin(t, "dpo-freiburg", "consent-admin")
	for _, i := range []*consenttest.Issuer{ufr, ulm} {
		if _, err := ca.RegisterConsentKey(ctx, &pb.RegisterConsentKeyRequest{Tenant: i.Tenant, KeyId: i.KeyID, PublicKey: i.PublicKeyPEM()}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := ca.RegisterConsentKey(ctx, &pb.RegisterConsentKeyRequest{Tenant: "uk-freiburg", KeyId: "x", PublicKey: []byte("junk")})
	wantCode(t, "register junk key", err, codes.InvalidArgument, "")
	_, err = opA.RegisterConsentKey(ctx, &pb.RegisterConsentKeyRequest{Tenant: "uk-freiburg", KeyId: "x", PublicKey: ufr.PublicKeyPEM()})
	wantCode(t, "register as operator", err, codes.PermissionDenied, "")

	rpc := pb.NewTrustClient(e.dial(t))
	tok := e.token(t)
	now := time.Now()
	kc := map[string]string{"tenant": "uk-freiburg", "patient": "psn-7f3a"}
	good := ufr.Sign(ufr.Claims("st-1", "psn-7f3a", "hello", now, consent.Treatment))
	gen, err := rpc.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "hello/patient-records", Context: kc, Consent: good})
	if err != nil {
		t.Fatalf("release with consent: %v", err)
	}
	unwrap := func(consentRaw []byte, bg string, ctxv map[string]string) error {
		_, err := rpc.UnwrapDataKey(ctx, &pb.UnwrapDataKeyRequest{Token: tok, KeyName: "hello/patient-records", WrappedKey: gen.GetWrappedKey(),
			Context: ctxv, Consent: consentRaw, BreakGlassId: bg})
		return err
	}
	if err := unwrap(good, "", kc); err != nil {
		t.Fatalf("unwrap with consent: %v", err)
	}
	if err := unwrap(ufr.SignCWT(ufr.Claims("st-1c", "psn-7f3a", "hello", now, consent.Treatment)), "", kc); err != nil {
		t.Fatalf("unwrap with a CWT statement: %v", err)
	}

	expired := ufr.Claims("st-2", "psn-7f3a", "hello", now, consent.Treatment)
	expired.NotBefore, expired.Expires = now.Add(-48*time.Hour).Unix(), now.Add(-time.Hour).Unix()
	other := map[string]string{"tenant": "uk-freiburg", "patient": "psn-0000"}
	bad := []struct {
		name    string
		consent []byte
		kc      map[string]string
		code    codes.Code
		claim   string
	}{
		{"no statement", nil, kc, codes.PermissionDenied, "consent"},
		{"malformed", []byte("eyJ.garbage"), kc, codes.InvalidArgument, ""},
		{"unsigned", []byte("eyJhbGciOiJub25lIn0.e30."), kc, codes.PermissionDenied, "consent.signature"},
		{"expired", ufr.Sign(expired), kc, codes.PermissionDenied, "consent.exp"},
		{"foreign tenant", ulm.Sign(ulm.Claims("st-3", "psn-7f3a", "hello", now, consent.Treatment)), kc, codes.PermissionDenied, "consent.signature"},
		{"purpose not granted", ufr.Sign(ufr.Claims("st-4", "psn-7f3a", "hello", now, consent.Research)), kc, codes.PermissionDenied, "consent.purpose"},
		{"patient mismatch", good, other, codes.PermissionDenied, "consent.sub"},
		{"patient field absent", good, map[string]string{"tenant": "uk-freiburg"}, codes.PermissionDenied, "context.patient"},
	}
	for _, b := range bad {
		err := unwrap(b.consent, "", b.kc)
		wantCode(t, b.name, err, b.code, b.claim)
		if strings.Contains(err.Error(), "psn-") {
			t.Errorf("%s: status names the patient: %v", b.name, err)
		}
	}
	if err := unwrap(ufr.Sign(ufr.Claims("st-4", "psn-7f3a", "hello", now, consent.Research)), "", kc); !strings.Contains(err.Error(), "purpose treatment") {
		t.Errorf("purpose denial does not name the missing purpose: %v", err)
	}

	// The same over the HTTP/JSON form of the API on the gRPC port: a release with a statement,
	// and a denial that names the missing purpose in its details.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS13}}}
	postJSON := func(m proto.Message) (int, []byte) {
		b, _ := protojson.Marshal(m)
		resp, err := hc.Post("https://"+e.addr+"/medicus.trust.v1.Trust/UnwrapDataKey", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	if code, out := postJSON(&pb.UnwrapDataKeyRequest{Token: tok, KeyName: "hello/patient-records", WrappedKey: gen.GetWrappedKey(), Context: kc, Consent: good}); code != http.StatusOK {
		t.Fatalf("HTTP release with consent: %d %s", code, out)
	}
	research := ufr.Sign(ufr.Claims("st-4", "psn-7f3a", "hello", now, consent.Research))
	if code, out := postJSON(&pb.UnwrapDataKeyRequest{Token: tok, KeyName: "hello/patient-records", WrappedKey: gen.GetWrappedKey(), Context: kc, Consent: research}); code != http.StatusForbidden ||
		!bytes.Contains(out, []byte(`"claim":"consent.purpose"`)) || !bytes.Contains(out, []byte("purpose treatment not granted")) || bytes.Contains(out, []byte("psn-")) {
		t.Fatalf("HTTP purpose denial: %d %s", code, out)
	}

	// Withdrawal takes effect at the next release.
	if _, err := ca.WithdrawConsent(ctx, &pb.WithdrawConsentRequest{Tenant: "uk-freiburg", StatementId: "st-1"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "withdrawn", unwrap(good, "", kc), codes.PermissionDenied, "consent.withdrawn")

	// Break-glass: two different people; no self-approval, no replayed approval.
	bg1, bg2 := e.admin(t, "dr-house", "break-glass"), e.admin(t, "dr-cuddy", "break-glass")
	reason := "Unconscious patient in ER, consent cannot be obtained"
	_, err = bg1.RequestBreakGlass(ctx, &pb.RequestBreakGlassRequest{Tenant: "uk-freiburg", KeyName: "hello/patient-records", Reason: reason, DurationSeconds: 7200})
	wantCode(t, "break-glass over an hour", err, codes.InvalidArgument, "")
	req, err := bg1.RequestBreakGlass(ctx, &pb.RequestBreakGlassRequest{Tenant: "uk-freiburg", KeyName: "hello/patient-records", Reason: reason, DurationSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "release before approval", unwrap(nil, req.GetId(), kc), codes.PermissionDenied, "break_glass")
	_, err = bg1.ApproveBreakGlass(ctx, &pb.ApproveBreakGlassRequest{Id: req.GetId()})
	wantCode(t, "self-approval", err, codes.PermissionDenied, "")
	// Another certificate of the same person is the same identity.
	_, err = e.admin(t, "dr-house", "break-glass").ApproveBreakGlass(ctx, &pb.ApproveBreakGlassRequest{Id: req.GetId()})
	wantCode(t, "self-approval with a second certificate", err, codes.PermissionDenied, "")
	ap, err := bg2.ApproveBreakGlass(ctx, &pb.ApproveBreakGlassRequest{Id: req.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(ap.GetExpiresAt().AsTime()); d > time.Hour || d < 59*time.Minute {
		t.Errorf("break-glass window %s, want at most one hour", d)
	}
	_, err = bg2.ApproveBreakGlass(ctx, &pb.ApproveBreakGlassRequest{Id: req.GetId()})
	wantCode(t, "replayed approval", err, codes.FailedPrecondition, "")
	if err := unwrap(nil, req.GetId(), kc); err != nil {
		t.Fatalf("release under break-glass: %v", err)
	}
	wantCode(t, "break-glass for another tenant", unwrap(nil, req.GetId(), map[string]string{"tenant": "uk-ulm", "patient": "psn-7f3a"}), codes.PermissionDenied, "break_glass")
	dpo := e.admin(t, "dpo", "auditor")
	l, err := dpo.ListBreakGlass(ctx, &pb.ListBreakGlassRequest{})
	if err != nil || len(l.GetEntries()) != 1 || l.GetEntries()[0].GetReleases() != 1 || l.GetEntries()[0].GetReason() != reason {
		t.Fatalf("list = %v, %v", l, err)
	}
	_, err = bg2.ReviewBreakGlass(ctx, &pb.ReviewBreakGlassRequest{Id: req.GetId(), Outcome: "justified"})
	wantCode(t, "review by the approver", err, codes.PermissionDenied, "")
	_, err = dpo.ReviewBreakGlass(ctx, &pb.ReviewBreakGlassRequest{Id: req.GetId(), Outcome: "maybe"})
	wantCode(t, "bad outcome", err, codes.InvalidArgument, "")
	if _, err := dpo.ReviewBreakGlass(ctx, &pb.ReviewBreakGlassRequest{Id: req.GetId(), Outcome: "justified"}); err != nil {
		t.Fatal(err)
	}
	if l, _ := dpo.ListBreakGlass(ctx, &pb.ListBreakGlassRequest{}); len(l.GetEntries()) != 0 {
		t.Fatalf("reviewed break-glass still listed: %v", l)
	}

	// Shredding: two operators; unknown key NotFound; later unwraps say shredded.
	unk, err := opA.RequestShred(ctx, &pb.RequestShredRequest{KeyName: "hello/no-such-key"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = opB.ApproveShred(ctx, &pb.ApproveShredRequest{Id: unk.GetId()})
	wantCode(t, "shred of an unknown key", err, codes.NotFound, "")
	sh, err := opA.RequestShred(ctx, &pb.RequestShredRequest{KeyName: "hello/patient-records"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = opA.ApproveShred(ctx, &pb.ApproveShredRequest{Id: sh.GetId()})
	wantCode(t, "self-approved shred", err, codes.PermissionDenied, "")
	fresh := ufr.Sign(ufr.Claims("st-5", "psn-7f3a", "hello", now, consent.Treatment))
	if err := unwrap(fresh, "", kc); err != nil {
		t.Fatalf("unwrap before shred: %v", err)
	}
	if _, err := opB.ApproveShred(ctx, &pb.ApproveShredRequest{Id: sh.GetId()}); err != nil {
		t.Fatal(err)
	}
	err = unwrap(fresh, "", kc)
	wantCode(t, "unwrap after shred", err, codes.FailedPrecondition, "")
	if !strings.Contains(err.Error(), "shredded") {
		t.Errorf("unwrap after shred: %v", err)
	}
	_, err = opA.CreateKey(ctx, &pb.CreateKeyRequest{Name: "hello/patient-records"})
	wantCode(t, "re-create a shredded name", err, codes.FailedPrecondition, "")

	// The public log holds IDs and digests, never a patient pseudonym, a statement or a reason.
	e.publish(t)
	var logBytes []byte
	filepath.Walk(filepath.Join(e.data, "audit"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			logBytes = append(logBytes, b...)
		}
		return nil
	})
	for _, leak := range [][]byte{[]byte("psn-7f3a"), []byte("Unconscious"), good[:40], []byte("uk-freiburg")} {
		if bytes.Contains(logBytes, leak) {
			t.Errorf("audit log contains %q", leak)
		}
	}
	// The tenant's Art. 30 report, read with the tenant's key from the deployment's context key,
	// and a dry-run of a candidate that drops the grant, both over the daemon's own log.
	ckb, err := os.ReadFile(filepath.Join(e.data, "dev-audit-context.key"))
	if err != nil {
		t.Fatal(err)
	}
	ck, err := audit.ParseContextKey(ckb)
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := os.ReadFile(filepath.Join(e.data, "audit", "note.pub"))
	src := auditor.Source{Log: filepath.Join(e.data, "audit"), Key: strings.TrimSpace(string(vkey))}
	rows, err := report.Run(ctx, report.Options{Source: src, Key: ck.Tenant("uk-freiburg")})
	if err != nil {
		t.Fatal(err)
	}
	var withConsent, withBreakGlass int
	for _, r := range rows {
		if r.ConsentID == "st-1" && r.Verdict == "allow" && r.Service == "hello" && len(r.Purposes) == 1 {
			withConsent++
		}
		if r.BreakGlassID == req.GetId() && r.Verdict == "allow" && r.Event == "unwrap_data_key" {
			withBreakGlass++
		}
	}
	if withConsent != 3 || withBreakGlass != 1 { // st-1: generate, unwrap over gRPC, unwrap over HTTP
		t.Errorf("report: %d releases under st-1, %d under break-glass; rows %+v", withConsent, withBreakGlass, rows)
	}
	cand, err := policies.Parse(map[string][]byte{"hello.yaml": []byte(strings.Replace(consentPolicy, "hello/patient-records", "hello/other-records", 1))})
	if err != nil {
		t.Fatal(err)
	}
	dry, err := replay.Run(ctx, replay.Options{Source: src, Bundle: cand})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Flips) == 0 || dry.Flips[0].Would != "deny" {
		t.Errorf("dry-run of a candidate without the grant: %+v", dry)
	}
	for _, want := range []string{`"consent_id":"st-1"`, `"consent_digest":"`, `"break_glass_id":"` + req.GetId(), `"reason_digest":"`, `"purposes":["treatment"]`, `"event":"admin.shred_approve"`} {
		if !bytes.Contains(logBytes, []byte(want)) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

// TestShadowPolicyConfig checks the shadow_policy wiring: a candidate bundle loads beside the
// active one, and a missing one stops trustd from starting rather than being ignored.
func TestShadowPolicyConfig(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	os.Mkdir(pol, 0o700)
	write(t, pol, "hello.yaml", consentPolicy)
	for _, tc := range []struct {
		shadow string
		ok     bool
	}{{pol, true}, {filepath.Join(dir, "missing"), false}} {
		cfg := &Config{Dev: true, DataDir: filepath.Join(t.TempDir(), "data"), Policy: pol, ShadowPolicy: tc.shadow, Listen: "127.0.0.1:0"}
		d, err := New(context.Background(), cfg, Env{}, slog.New(slog.DiscardHandler))
		if (err == nil) != tc.ok {
			t.Fatalf("shadow_policy %s: %v", tc.shadow, err)
		}
		if d != nil {
			d.Close()
		}
	}
}
