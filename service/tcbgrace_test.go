package service_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/intel/inteltest"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/attest/tdx/tdxtest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/metrics"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/service"
)

// tcbUpdater and pckRecheck are the daemon's wiring of one Intel verifier (internal/daemon).
type tcbUpdater struct{ v attest.TCBUpdater }

func (u tcbUpdater) Update(c *attest.Claims, now time.Time) error { return u.v.UpdateTCB(c, now) }

type pckRecheck struct {
	v   attest.ClaimsRechecker
	now func() time.Time
}

func (r pckRecheck) Check(c *attest.Claims) error { return r.v.RecheckClaims(c, r.now()) }

// stripQE is a TDX verifier of an older trustd: its claims lack the QE fields.
type stripQE struct{ *tdx.Verifier }

func (s stripQE) Verify(ctx context.Context, ev *attest.Evidence, o attest.Options) (*attest.Claims, error) {
	c, err := s.Verifier.Verify(ctx, ev, o)
	if c != nil {
		delete(c.Config, intel.ClaimQEAttributes)
		delete(c.Config, intel.ClaimQEMiscSelect)
	}
	return c, err
}

// graceCount counts trustd_tcb_grace_total.
type graceCount struct {
	service.Recorder
	n atomic.Int64
}

func (g *graceCount) TCBGrace(tee string) {
	if tee == "tdx" {
		g.n.Add(1)
	}
}

type tdxHarness struct {
	*harness
	f      *tdxtest.Fixture
	pcs    *inteltest.PCS
	v      *tdx.Verifier
	graced *graceCount
}

// startTDX is trustd with a TDX verifier on a fake PCS refreshed every minute, the TCB status
// recomputed at release, and a TDX policy accepting only UpToDate with the given grace.
func startTDX(t testing.TB, grace string, old bool) *tdxHarness {
	return startTDXLog(t, grace, old, nil)
}

// startTDXLog also lets log replace the in-memory audit log.
func startTDXLog(t testing.TB, grace string, old bool, log service.AuditLog) *tdxHarness {
	t.Helper()
	f, err := tdxtest.NewFixture()
	if err != nil {
		t.Fatal(err)
	}
	good, err := f.Collateral(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	pcs := inteltest.NewPCS(t, good)
	v, err := tdx.New(tdx.Options{Root: f.PKI.Root, PCSURL: pcs.URL(), Getter: pcs.Getter(),
		Freshness: intel.Freshness{RefreshInterval: time.Minute, MaxAge: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	var h *harness
	gc := &graceCount{Recorder: metrics.Nop{}}
	h = startCustom(t, nil, log, func(o *service.Options) {
		o.Metrics = gc
		var tv attest.Verifier = v
		if old {
			tv = stripQE{v}
		}
		o.Verifiers = append(o.Verifiers, tv)
		o.TCB = tcbUpdater{v}
		o.Revocations = pckRecheck{v, func() time.Time { return *h.now }}
	})
	*h.now = f.Now
	th := &tdxHarness{harness: h, f: f, pcs: pcs, v: v, graced: gc}
	th.policy(t, grace)
	return th
}

func (h *tdxHarness) policy(t testing.TB, grace string) {
	t.Helper()
	mrtd := make([]byte, 48)
	mrtd[0] = 0x11 // tdxtest.DefaultSpec
	b, err := policies.Parse(map[string][]byte{"td.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: td}
spec:
  tee: [tdx]
  measurements: ["` + attest.Hex(mrtd).String() + `"]
  require: {tcbRecoveryGrace: ` + grace + `}
  grants:
    secrets: [hello/api-token]
`)})
	if err != nil {
		t.Fatal(err)
	}
	h.policies.b.Store(b)
}

func (h *tdxHarness) attest(t testing.TB) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	ch, err := h.rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := enclave.NewKey(seal.X25519)
	s := h.f.DefaultSpec()
	s.Body.ReportData = key.ReportData(ch.GetNonce())
	ev := &attest.Evidence{TEE: attest.TDX, Report: h.f.Quote(s)}
	resp, err := h.rpc.Attest(ctx, &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: wire.EvidenceToPB(ev), WorkloadKey: wire.WorkloadKeyToPB(key.Public())})
	return resp.GetToken(), err
}

// recover publishes Intel's TCB recovery (optionally revoking the PCK too) and lets the
// scheduled refresh fetch it at now+d.
func (h *tdxHarness) recover(t testing.TB, d time.Duration, revokedPCK bool) {
	t.Helper()
	c, err := h.f.Recovered(revokedPCK)
	if err != nil {
		t.Fatal(err)
	}
	h.pcs.Set(c)
	*h.now = h.now.Add(d)
	h.v.RefreshCollateral(context.Background(), *h.now)
}

func wantCode(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msg) {
		t.Fatalf("%s: %v, want %v containing %q", what, err, code, msg)
	}
}

// (1) Grace 0: a token issued UpToDate is refused at its next release once the refresh after
// an Intel TCB recovery says OutOfDate.
func TestTCBRecoveryRefusesOutstandingToken(t *testing.T) {
	h := startTDX(t, "0s", false)
	tok, err := h.attest(t)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.getSecret(tok); err != nil {
		t.Fatal(err)
	}
	h.recover(t, 2*time.Minute, false)
	_, err = h.getSecret(tok)
	wantCode(t, "release after the recovery", err, codes.PermissionDenied, "TCB status is OutOfDate (advisories "+tdxtest.RecoveryAdvisory+")")
	if r := h.audit.last(); r.Verdict == "allow" || len(r.Warnings) != 0 {
		t.Fatalf("record %+v", r)
	}
	_, err = h.attest(t)
	wantCode(t, "attest after the recovery", err, codes.PermissionDenied, "TCB status is OutOfDate")
}

// (2) Grace 72h: the release and a new attestation are allowed with a warning in the audit
// record, and refused once the grace has run out.
func TestTCBRecoveryGrace(t *testing.T) {
	h := startTDX(t, "72h", false)
	tok, err := h.attest(t)
	if err != nil {
		t.Fatal(err)
	}
	h.recover(t, 2*time.Minute, false)
	since := *h.now
	if _, err := h.getSecret(tok); err != nil {
		t.Fatalf("release within the grace: %v", err)
	}
	r := h.audit.last()
	if r.Verdict != "allow" || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "TCB status OutOfDate ("+tdxtest.RecoveryAdvisory+") under tcbEvaluationDataNumber 18, appraised as UpToDate (number 17) until "+since.Add(72*time.Hour).UTC().Format(time.RFC3339)) {
		t.Fatalf("release record %+v", r)
	}
	*h.now = h.now.Add(time.Minute)
	tok2, err := h.attest(t)
	if err != nil {
		t.Fatalf("attest within the grace: %v", err)
	}
	if r := h.audit.last(); r.Verdict != "allow" || len(r.Warnings) != 1 || !strings.Contains(string(r.Claims), `"tcb_status":"OutOfDate"`) {
		t.Fatalf("attest record: verdict %s warnings %v claims %s", r.Verdict, r.Warnings, r.Claims)
	}
	if n := h.graced.n.Load(); n != 2 {
		t.Fatalf("trustd_tcb_grace_total counted %d, want 2", n)
	}
	// A reload that shortens the grace to 30s (ended a minute ago) ends it for the live token.
	h.policy(t, "30s")
	_, err = h.getSecret(tok2)
	wantCode(t, "release after the grace", err, codes.PermissionDenied, "TCB status is OutOfDate")
	// With the 72h grace, a new attestation after it ends is refused.
	h.policy(t, "72h")
	*h.now = since.Add(72*time.Hour + time.Second)
	h.v.RefreshCollateral(context.Background(), *h.now)
	_, err = h.attest(t)
	wantCode(t, "attest after the grace", err, codes.PermissionDenied, "TCB status is OutOfDate")
}

// (3) A PCK revoked with the recovery is never graced.
func TestTCBRecoveryGraceNotForRevokedPCK(t *testing.T) {
	h := startTDX(t, "72h", false)
	tok, err := h.attest(t)
	if err != nil {
		t.Fatal(err)
	}
	h.recover(t, 2*time.Minute, true)
	_, err = h.getSecret(tok)
	wantCode(t, "release", err, codes.PermissionDenied, "revoked")
	_, err = h.attest(t)
	wantCode(t, "attest", err, codes.PermissionDenied, "revoked")
	if n := h.graced.n.Load(); n != 0 {
		t.Fatalf("trustd_tcb_grace_total counted %d", n)
	}
	for _, r := range h.audit.records {
		if len(r.Warnings) != 0 {
			t.Fatalf("graced record %+v", r)
		}
	}
}

// (4) A token of an older trustd, without the claims the recomputation needs, on a platform
// with online collateral: the SDK must attest again.
func TestTCBRecomputeOldToken(t *testing.T) {
	h := startTDX(t, "0s", true)
	tok, err := h.attest(t)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.getSecret(tok)
	wantCode(t, "release on an old token", err, codes.Unauthenticated, "attest again")
}
