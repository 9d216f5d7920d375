package service_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/internal/benchratio"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/revoke"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/service"
)

// BenchmarkRatioReleaseReappraise compares a release over gRPC that re-appraises (decodes the
// token's claims, re-runs its policy, checks 100 revocations) against the same release without
// re-appraisal: the cost of making policy changes and revocations take effect at once.
func BenchmarkRatioReleaseReappraise(b *testing.B) {
	ctx := context.Background()
	set, err := revoke.Open(ctx, &revoke.FileStore{Path: filepath.Join(b.TempDir(), "r.json")}, revoke.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if _, err := set.Add(ctx, revoke.Revocation{Kind: revoke.ChipID, Value: fmt.Sprintf("%064x", i)}); err != nil {
			b.Fatal(err)
		}
	}
	with := startCustom(b, nil, noLog{}, func(o *service.Options) { o.Revocations = set })
	without := startFull(b, nil, noLog{})
	service.SkipReappraisalForBenchmark(without.svc)
	run := func(h *harness) func(n int) {
		tok := attestTB(b, h)
		return func(n int) {
			for range n {
				if _, err := h.getSecret(tok); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	benchratio.Time(b, "release-reappraise/release", run(with), run(without))

	// TDX with online collateral: the release also recomputes the TCB status under the TCB
	// info and QE identity in use now, and rechecks the PCK against the CRL (tcbgrace.go).
	tdxWith, tdxWithout := startTDXLog(b, "72h", false, noLog{}), startTDXLog(b, "72h", false, noLog{})
	service.SkipReappraisalForBenchmark(tdxWithout.svc)
	runTDX := func(h *tdxHarness) func(n int) {
		tok, err := h.attest(b)
		if err != nil {
			b.Fatal(err)
		}
		return func(n int) {
			for range n {
				if _, err := h.getSecret(tok); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	benchratio.Time(b, "release-reappraise-tdx/release", runTDX(tdxWith), runTDX(tdxWithout))
}

func attestTB(tb testing.TB, h *harness) []byte {
	ctx := context.Background()
	ch, err := h.rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
	if err != nil {
		tb.Fatal(err)
	}
	key, _ := enclave.NewKey(seal.X25519)
	ev, _ := hello().Evidence(ctx, key.ReportData(ch.GetNonce()))
	resp, err := h.rpc.Attest(ctx, &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: wire.EvidenceToPB(ev), WorkloadKey: wire.WorkloadKeyToPB(key.Public())})
	if err != nil {
		tb.Fatal(err)
	}
	return resp.GetToken()
}
