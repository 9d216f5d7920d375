package service_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/ear"
	"github.com/medicus-cloud/trust/ear/issuer"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/release"
	"github.com/medicus-cloud/trust/revoke"
	"github.com/medicus-cloud/trust/sdk"
	"github.com/medicus-cloud/trust/service"
)

// helloPolicy is the harness's hello policy with extra spec lines.
func helloPolicy(t testing.TB, extra string) *policies.Bundle {
	t.Helper()
	b, err := policies.Parse(map[string][]byte{"hello.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: hello}
spec:
  tee: [insecure-simulated]
  measurements: ["` + attest.Hex(helloMeasurement()).String() + `"]
  grants:
    secrets: [hello/api-token]
    dataKeys: [hello/records]
` + extra)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) attestToken(t *testing.T) []byte {
	t.Helper()
	resp, _, err := h.attestRaw(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetToken()
}

func (h *harness) getSecret(tok []byte) (*pb.GetSecretResponse, error) {
	return h.rpc.GetSecret(context.Background(), &pb.GetSecretRequest{Token: tok, Name: "hello/api-token"})
}

// A reload that tightens any check of the token's policy stops the live token's next release,
// naming the claim that now fails.
func TestTightenedPolicyStopsLiveToken(t *testing.T) {
	for _, tc := range []struct{ name, extra, claim string }{
		{"min TCB", "  require: {minTCB: {guest_svn: 2}}\n", "tcb.guest_svn"},
		{"config", "  require: {config: {host_data: \"" + strings.Repeat("11", 32) + "\"}}\n", "config.host_data"},
		{"CEL rule", "  rules: [{name: no-simulator, expr: 'claims.platform.product != \"simulator\"'}]\n", "rule no-simulator"},
		{"platform SMT", "  require: {platformSMTEnabled: true}\n", "platform_smt_enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t)
			h.policies.b.Store(helloPolicy(t, ""))
			tok := h.attestToken(t)
			if _, err := h.getSecret(tok); err != nil {
				t.Fatal(err)
			}
			h.policies.b.Store(helloPolicy(t, tc.extra))
			_, err := h.getSecret(tok)
			d := service.DenialOf(err)
			if status.Code(err) != codes.PermissionDenied || d == nil || d.GetClaim() != tc.claim {
				t.Fatalf("release after tightening: %v (denial %v), want PermissionDenied on %s", err, d, tc.claim)
			}
			if r := h.audit.last(); r.Verdict != audit.VerdictDeny || r.Event != audit.EventGetSecret {
				t.Errorf("record %+v", r)
			}
		})
	}
}

// Tokens that carry no appraised claims (minted by a trustd before re-appraisal) must attest
// again: Unauthenticated, which the SDK answers by attesting.
func TestTokenWithoutAppraisedClaims(t *testing.T) {
	h := start(t)
	tok, _, err := h.tokens.Issue(&ear.Claims{TEE: string(attest.InsecureSimulated), Measurement: helloMeasurement(), Policy: "hello",
		Grants: []release.Grant{{Kind: release.GrantSecret, Name: "hello/api-token"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.getSecret(tok); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "appraised") {
		t.Fatalf("release on a token without appraised claims: %v", err)
	}
}

func openRevocations(t *testing.T, path string, now func() time.Time) *revoke.Set {
	t.Helper()
	s, err := revoke.Open(context.Background(), &revoke.FileStore{Path: path}, revoke.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A revocation stops releases to outstanding tokens and new attestations, also after a
// restart; the SDK attests again on its own and then reports a clear denial.
func TestRevocationStopsReleases(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "revocations.json")
	var set *revoke.Set
	h := startCustom(t, nil, nil, func(o *service.Options) {
		set = openRevocations(t, path, o.Now)
		o.Revocations = set
	})
	c := h.client(t, hello())
	tok := h.attestToken(t)
	if _, err := c.Secret(ctx, "hello/api-token"); err != nil {
		t.Fatal(err)
	}
	if _, err := set.Add(ctx, revoke.Revocation{Kind: revoke.Measurement, Value: attest.Hex(helloMeasurement()).String(), Reason: "leaked image"}); err != nil {
		t.Fatal(err)
	}
	if d := service.DenialOf(must(h.getSecret(tok))); d == nil || d.GetClaim() != "revocation" {
		t.Fatalf("release on an outstanding token after revocation: denial %v", d)
	}
	attests := countEvents(h.audit, audit.EventAttest)
	_, err := c.Secret(ctx, "hello/api-token")
	var de *sdk.DeniedError
	if !errors.As(err, &de) || de.Claim != "revocation" {
		t.Fatalf("SDK after revocation: %v", err)
	}
	if n := countEvents(h.audit, audit.EventAttest); n != attests+1 {
		t.Errorf("the SDK attested %d times after the denial, want once", n-attests)
	}
	// A replica started later reads the revocation from the store.
	h2 := startCustom(t, nil, nil, func(o *service.Options) { o.Revocations = openRevocations(t, path, o.Now) })
	if _, _, err := h2.attestRaw(t, nil); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("attest on a restarted replica: %v", err)
	}
}

func must[T any](_ T, err error) error { return err }

func countEvents(m *memAudit, event string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.records {
		if r.Event == event {
			n++
		}
	}
	return n
}

// failingStore stops answering after the first read.
type failingStore struct {
	revoke.FileStore
	down bool
}

func (f *failingStore) List(ctx context.Context) ([]revoke.Revocation, error) {
	if f.down {
		return nil, errors.New("connection refused")
	}
	return f.FileStore.List(ctx)
}

// Without the revocation store for longer than its maximum staleness, releases fail closed.
func TestRevocationsStaleFailClosed(t *testing.T) {
	st := &failingStore{FileStore: revoke.FileStore{Path: filepath.Join(t.TempDir(), "r.json")}}
	var set *revoke.Set
	h := startCustom(t, nil, nil, func(o *service.Options) {
		var err error
		set, err = revoke.Open(context.Background(), st, revoke.Options{Now: o.Now, PollInterval: time.Second, MaxStale: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		o.Revocations = set
	})
	tok := h.attestToken(t)
	st.down = true
	*h.now = h.now.Add(5 * time.Second)
	if set.Refresh(context.Background()) == nil {
		t.Fatal("refresh of a down store succeeded")
	}
	if _, err := h.getSecret(tok); err != nil {
		t.Fatalf("within max staleness: %v", err)
	}
	*h.now = h.now.Add(6 * time.Second)
	if _, err := h.getSecret(tok); status.Code(err) != codes.Unavailable {
		t.Fatalf("past max staleness: %v, want Unavailable", err)
	}
}

// A policy's lease bounds each release: the response says when it ends, trustd refuses the
// token past it, and the SDK attests again on its own.
func TestLease(t *testing.T) {
	ctx := context.Background()
	h := start(t)
	h.policies.b.Store(helloPolicy(t, "  lease: 1m\n"))
	issued := h.now.Truncate(time.Second)
	tok := h.attestToken(t)
	r, err := h.getSecret(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.GetLeaseExpiresAt().AsTime(), issued.Add(time.Minute); !got.Equal(want) {
		t.Errorf("lease ends %v, want %v", got, want)
	}
	*h.now = h.now.Add(61 * time.Second)
	if _, err := h.getSecret(tok); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("release past the lease: %v, want Unauthenticated", err)
	}
	// Without a policy lease the lease is the token's expiry.
	h.policies.b.Store(helloPolicy(t, ""))
	tok = h.attestToken(t)
	r, err = h.getSecret(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.GetLeaseExpiresAt().AsTime(), h.now.Truncate(time.Second).Add(issuer.DefaultLifetime); !got.Equal(want) {
		t.Errorf("lease without a policy lease ends %v, want the token expiry %v", got, want)
	}

	// The SDK: its key cache drops a key when its lease ends and the client attests again.
	h.policies.b.Store(helloPolicy(t, "  lease: 1m\n"))
	c := h.client(t, hello())
	kc := map[string]string{"tenant": "t"}
	ct, err := c.Encrypt(ctx, "hello/records", kc, []byte("patient-free test data"))
	if err != nil {
		t.Fatal(err)
	}
	attests, unwraps := countEvents(h.audit, audit.EventAttest), countEvents(h.audit, audit.EventUnwrapDataKey)
	if _, err := c.Decrypt(ctx, kc, ct); err != nil {
		t.Fatal(err)
	}
	if n := countEvents(h.audit, audit.EventUnwrapDataKey); n != unwraps {
		t.Fatalf("within the lease the cached key served; %d unwraps", n-unwraps)
	}
	*h.now = h.now.Add(61 * time.Second)
	if _, err := c.Decrypt(ctx, kc, ct); err != nil {
		t.Fatal(err)
	}
	if n := countEvents(h.audit, audit.EventUnwrapDataKey); n != unwraps+1 {
		t.Errorf("after the lease, %d unwraps, want 1", n-unwraps)
	}
	if n := countEvents(h.audit, audit.EventAttest); n != attests+1 {
		t.Errorf("after the lease, %d attestations, want 1 (before the release, not after a refusal)", n-attests)
	}
	if r := h.audit.last(); r.Verdict != audit.VerdictAllow {
		t.Errorf("last record %+v", r)
	}
}
