package service_test

// Regression tests of issue 14, items 1-5: admin actions audited first, no raw context values
// in records or logs, both policy digests in release records, failed evidence summarized, one
// release vocabulary from service to /metrics.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/metrics"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/release"
	"github.com/medicus-cloud/trust/sdk"
	"github.com/medicus-cloud/trust/secret"
	"github.com/medicus-cloud/trust/service"
)

// The release vocabulary's outcomes are audit verdicts.
func TestOutcomesAreVerdicts(t *testing.T) {
	for _, o := range release.Outcomes() {
		r := &audit.Record{Time: time.Now(), Event: "x", Verdict: string(o)}
		if _, err := audit.Marshal(r); err != nil {
			t.Errorf("outcome %q is not an audit verdict: %v", o, err)
		}
	}
}

// journal is the order in which the audit log and the key store saw things.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	j.events = append(j.events, e)
	j.mu.Unlock()
}

// orderedAudit notes each append in the journal; down makes appends fail.
type orderedAudit struct {
	memAudit
	j *journal
}

func (o *orderedAudit) Append(ctx context.Context, r *audit.Record) (uint64, error) {
	i, err := o.memAudit.Append(ctx, r)
	if err == nil {
		o.j.add("audit " + r.Event + " " + r.Verdict)
	}
	return i, err
}

// spyAdmin is the real local keyring, noting each action in the journal.
type spyAdmin struct {
	kms.Admin
	j *journal
}

func (s spyAdmin) CreateKey(ctx context.Context, name string) error {
	s.j.add("act create_key")
	return s.Admin.CreateKey(ctx, name)
}
func (s spyAdmin) RotateKey(ctx context.Context, name string) error {
	s.j.add("act rotate_key")
	return s.Admin.RotateKey(ctx, name)
}
func (s spyAdmin) PutSecret(ctx context.Context, name string, v *secret.Bytes) (uint64, error) {
	s.j.add("act put_secret")
	return s.Admin.PutSecret(ctx, name, v)
}

type spyReloader struct {
	service.PolicySource
	j *journal
}

func (s spyReloader) Reload(context.Context) error {
	s.j.add("act reload_policies")
	return nil
}

// Item 1: an admin action acts only after its record is durable; with the log down it answers
// Unavailable and changes nothing.
func TestAdminRecordsBeforeActing(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	j := &journal{}
	log := &orderedAudit{j: j}
	a, err := service.NewAdmin(service.AdminOptions{Keys: spyAdmin{h.keys, j}, Policies: spyReloader{h.policies, j}, Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"put_secret", func() error {
			_, err := a.PutSecret(ctx, &pb.PutSecretRequest{Name: "hello/new-secret", Value: []byte("v")})
			return err
		}},
		{"create_key", func() error {
			_, err := a.CreateKey(ctx, &pb.CreateKeyRequest{Name: "hello/new-key"})
			return err
		}},
		{"rotate_key", func() error {
			_, err := a.RotateKey(ctx, &pb.RotateKeyRequest{Name: "hello/records"})
			return err
		}},
		{"reload_policies", func() error {
			_, err := a.ReloadPolicies(ctx, &pb.ReloadPoliciesRequest{})
			return err
		}},
	}
	t.Run("log down", func(t *testing.T) {
		log.fail = true
		defer func() { log.fail = false }()
		for _, c := range calls {
			if err := c.call(); status.Code(err) != codes.Unavailable {
				t.Errorf("%s with the log down: %v, want Unavailable", c.name, err)
			}
		}
		if len(j.events) != 0 {
			t.Fatalf("acted with the log down: %v", j.events)
		}
		if _, err := h.keys.GetSecret(ctx, "hello/new-secret"); !errors.Is(err, kms.ErrNotFound) {
			t.Errorf("secret stored with the log down: %v", err)
		}
		if _, err := h.keys.GenerateDataKey(ctx, kms.MustBind("hello/new-key", nil)); !errors.Is(err, kms.ErrNotFound) {
			t.Errorf("key created with the log down: %v", err)
		}
	})
	t.Run("log up", func(t *testing.T) {
		for _, c := range calls {
			j.events = nil
			if err := c.call(); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			want := []string{"audit admin." + c.name + " allow", "act " + c.name}
			if strings.Join(j.events, "|") != strings.Join(want, "|") {
				t.Errorf("%s: order %q, want %q", c.name, j.events, want)
			}
		}
	})
	t.Run("action fails after its record", func(t *testing.T) {
		j.events = nil
		_, err := a.CreateKey(ctx, &pb.CreateKeyRequest{Name: "hello/new-key"})
		if status.Code(err) != codes.AlreadyExists {
			t.Fatalf("second CreateKey: %v", err)
		}
		n := len(log.records)
		first, second := log.records[n-2], log.records[n-1]
		if first.Verdict != audit.VerdictAllow || second.Verdict != audit.VerdictError || first.RequestID != second.RequestID || second.Reason == "" {
			t.Fatalf("records %+v, %+v: want the request, then its failure under the same request ID", first, second)
		}
	})
}

// serve serves svc on loopback behind interceptors and returns a client connection.
func serve(t *testing.T, svc *service.Service, ics ...grpc.UnaryServerInterceptor) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(ics...))
	pb.RegisterTrustServer(srv, svc)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// syncBuffer is a log sink for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Item 2: context values (tenant, case, patient pseudonym) reach neither the audit records nor
// trustd's log nor the access log, and the records' context digest is keyed.
func TestContextValuesStayOutOfRecordsAndLogs(t *testing.T) {
	ctx := context.Background()
	var svcLog, accessLog syncBuffer
	h := startCustom(t, nil, nil, func(o *service.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&svcLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	conn := serve(t, h.svc, metrics.AccessLog(metrics.AccessLogOptions{
		Logger: slog.New(slog.NewJSONHandler(&accessLog, &slog.HandlerOptions{Level: slog.LevelDebug}))}))
	c, err := sdk.New(ctx, sdk.Options{Conn: conn, Provider: hello(), Now: func() time.Time { return *h.now }})
	if err != nil {
		t.Fatal(err)
	}
	const (
		tenant  = "tenant-mallory-0xq7"
		caseNo  = "case-KH-2026-004711"
		patient = "pseudonym-7f3a9c"
	)
	// Denied: a tenant the grant does not allow; and the allowed tenant with a case and patient.
	_, _, err = c.GenerateDataKey(ctx, "hello/tenant-records", kms.Context{"tenant": tenant, "case": caseNo})
	var d *sdk.DeniedError
	if !errors.As(err, &d) || d.Claim != "context.tenant" {
		t.Fatalf("denial: %v", err)
	}
	_, _, err = c.GenerateDataKey(ctx, "hello/tenant-records", kms.Context{"case": caseNo})
	if !errors.As(err, &d) || d.Claim != "context.tenant" || d.Seen != "absent" {
		t.Fatalf("denial of a missing tenant: %v", err)
	}
	allowed := kms.Context{"tenant": "uk-ulm", "case": caseNo, "patient": patient}
	if _, _, err := c.GenerateDataKey(ctx, "hello/tenant-records", allowed); err != nil {
		t.Fatal(err)
	}
	recs, _ := json.Marshal(h.audit.records)
	for where, text := range map[string]string{"audit records": string(recs), "trustd log": svcLog.String(),
		"access log": accessLog.String(), "client's denial": err2s(d)} {
		for _, v := range []string{tenant, caseNo, patient, "uk-ulm", "uk-freiburg"} {
			if strings.Contains(text, v) {
				t.Errorf("%s contain the context value %q:\n%s", where, v, text)
			}
		}
	}
	// The digest is keyed: the unkeyed SHA-256 a guesser would compute is not in the log.
	last := h.audit.last()
	plain, _ := allowed.Digest()
	canon, _ := allowed.Canonical()
	if last.ContextDigest == hex.EncodeToString(plain) || last.ContextDigest != h.ctxKey.Digest("uk-ulm", canon) {
		t.Fatalf("context digest %s: want the keyed digest under the tenant's key", last.ContextDigest)
	}
}

func err2s(d *sdk.DeniedError) string {
	if d == nil {
		return ""
	}
	return d.Error() + " " + d.Seen + " " + d.Expected
}

// Item 3: a release's record names the bundle that decided and the one the token was issued
// under.
func TestReleaseRecordsBothPolicyDigests(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	issued := h.policies.Current()
	c := h.client(t, hello())
	if _, err := c.Attest(ctx); err != nil {
		t.Fatal(err)
	}
	// A reload: the same image and grants in a newer bundle.
	newer, err := policies.Parse(map[string][]byte{"hello.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: hello}
spec:
  tee: [insecure-simulated]
  measurements: ["` + attest.Hex(helloMeasurement()).String() + `"]
  grants:
    secrets: [hello/api-token, hello/another]
`)})
	if err != nil {
		t.Fatal(err)
	}
	h.policies.b.Store(newer)
	if _, err := c.Secret(ctx, "hello/api-token"); err != nil {
		t.Fatal(err)
	}
	r := h.audit.last()
	if r.Event != audit.EventGetSecret || r.PolicyDigest != hex.EncodeToString(newer.Digest) || r.TokenPolicyDigest != hex.EncodeToString(issued.Digest) {
		t.Fatalf("record policy_digest %s token_policy_digest %s; want deciding %x and issuing %x",
			r.PolicyDigest, r.TokenPolicyDigest, newer.Digest, issued.Digest)
	}
}

// Item 4: a flood of Attest calls with evidence that does not verify, for 60 s of (injected)
// time, costs the log one summary per source and interval; evidence that verifies is still
// recorded one decision at a time, and metrics count every failure.
func TestUnverifiedEvidenceFloodIsSummarized(t *testing.T) {
	const (
		interval = 10 * time.Second
		flood    = 60 * time.Second
		step     = 50 * time.Millisecond // 20 forgeries a second, the default per-peer rate
	)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := startCustom(t, nil, nil, func(o *service.Options) { o.Metrics = m; o.UnverifiedInterval = interval })
	start := *h.now
	forged, verified := 0, 0
	for i := 0; h.now.Sub(start) < flood; i++ {
		mutate := func(r *pb.AttestRequest, _ *enclave.Key) { r.Evidence.Report[len(r.Evidence.Report)-1] ^= 1 }
		if i%3 == 1 {
			mutate = func(r *pb.AttestRequest, _ *enclave.Key) { r.Evidence.Report = r.Evidence.Report[:50] }
		}
		if i%100 == 99 {
			mutate = nil
		}
		_, _, err := h.attestRaw(t, mutate)
		switch {
		case mutate == nil && err == nil:
			verified++
		case mutate != nil && (status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.InvalidArgument):
			forged++
		default:
			t.Fatalf("attempt %d: %v", i, err)
		}
		*h.now = h.now.Add(step)
	}
	h.svc.FlushUnverified(context.Background(), true)

	var summaries, attests int
	var counted uint64
	for _, r := range h.audit.records {
		switch r.Event {
		case audit.EventAttestUnverified:
			summaries++
			counted += r.Count
			if r.Caller != "127.0.0.1" || r.Reason == "" || r.Count == 0 || r.Until.Sub(r.Time) >= interval || r.Verdict == audit.VerdictAllow {
				t.Errorf("summary %+v", r)
			}
			if _, err := audit.Marshal(r); err != nil {
				t.Errorf("summary does not encode: %v", err)
			}
		case audit.EventAttest:
			attests++
			if r.Verdict != audit.VerdictAllow {
				t.Errorf("verified evidence recorded as %+v", r)
			}
		default:
			t.Errorf("unexpected record %+v", r)
		}
	}
	t.Logf("%d forged and %d verified attestations in %v: %d summaries, %d attestation records", forged, verified, flood, summaries, attests)
	if bound := int(flood/interval) + 1; summaries > bound || summaries == 0 {
		t.Errorf("%d summary records for one source in %v, want at most %d", summaries, flood, bound)
	}
	if counted != uint64(forged) {
		t.Errorf("summaries count %d failures, want %d", counted, forged)
	}
	if attests != verified {
		t.Errorf("%d attestation records for %d verified attestations", attests, verified)
	}
	want := fmt.Sprintf(`# HELP %[1]s Attest calls whose evidence failed verification (audited only as summaries), by TEE type.
# TYPE %[1]s counter
%[1]s{tee="insecure-simulated"} %[2]d
`, metrics.NameUnverified, forged)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), metrics.NameUnverified); err != nil {
		t.Errorf("metrics: %v", err)
	}
}

// Item 5: real releases through a real service, scraped from /metrics as Prometheus would, are
// labelled in the release vocabulary: allow/deny/error, and unwraps as unwrap.
func TestReleaseMetricsScrape(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := startCustom(t, nil, nil, func(o *service.Options) { o.Metrics = m })
	conn := serve(t, h.svc, m.UnaryInterceptor())
	c, err := sdk.New(ctx, sdk.Options{Conn: conn, Provider: hello(), Now: func() time.Time { return *h.now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Secret(ctx, "hello/api-token"); err != nil {
		t.Fatal(err)
	}
	kc := kms.Context{"tenant": "uk-ulm"}
	_, wrapped, err := c.GenerateDataKey(ctx, "hello/tenant-records", kc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnwrapDataKey(ctx, "hello/tenant-records", wrapped, kc); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.GenerateDataKey(ctx, "hello/tenant-records", kms.Context{"tenant": "elsewhere"}); err == nil {
		t.Fatal("tenant outside the grant released")
	}
	if _, err := c.Secret(ctx, "hello/missing-secret"); status.Code(err) != codes.NotFound {
		t.Fatalf("missing secret: %v", err)
	}
	hs := httptest.NewServer(metrics.Handler(reg))
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	for _, want := range []string{
		`trustd_releases_total{kind="secret",outcome="allow"} 1`,
		`trustd_releases_total{kind="secret",outcome="error"} 1`,
		`trustd_releases_total{kind="data_key",outcome="allow"} 1`,
		`trustd_releases_total{kind="data_key",outcome="deny"} 1`,
		`trustd_releases_total{kind="unwrap",outcome="allow"} 1`,
		`trustd_attestations_total{tee="insecure-simulated",verdict="allow"} 1`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(page, `"other"`) {
		t.Errorf("a label fell outside the vocabulary:\n%s", grepLines(page, "trustd_releases_total", "trustd_attestations_total"))
	}
	st, err := metrics.ParseStatus(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if st.Releases["unwrap/allow"] != 1 || st.Releases["data_key/allow"] != 1 {
		t.Errorf("status summary releases %v", st.Releases)
	}
}

func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
