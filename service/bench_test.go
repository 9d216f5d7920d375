package service_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sim"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/storage/posix"
	"github.com/medicus-cloud/trust/ear"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/internal/benchratio"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk"
	"github.com/medicus-cloud/trust/seal"
)

// BenchmarkRatioAttestRelease compares one attest-plus-release round trip over loopback gRPC
// (fresh workload key, challenge, evidence, Attest, GenerateDataKey, open) with the same steps
// done in-process: the cost of the protocol and transport over the crypto.
func BenchmarkRatioAttestRelease(b *testing.B) {
	ctx := context.Background()
	h := start(b)
	kc := kms.Context{"tenant": "t", "case": "1"}
	overGRPC := func(n int) {
		for range n {
			c, err := sdk.New(ctx, sdk.Options{Conn: h.conn, Provider: hello()})
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := c.GenerateDataKey(ctx, "hello/records", kc); err != nil {
				b.Fatal(err)
			}
		}
	}
	bundle := h.policies.Current() // the policy trustd appraises with, so both sides do the same work
	verifier := sim.NewInsecureVerifier()
	mem := &memAudit{}
	inProcess := func(n int) {
		nonce := make([]byte, 56)
		for range n {
			key, _ := enclave.NewKey(seal.X25519)
			ev, _ := hello().Evidence(ctx, key.ReportData(nonce))
			claims, err := verifier.Verify(ctx, ev, attest.Options{})
			if err != nil {
				b.Fatal(err)
			}
			rd := attest.ReportData(nonce, key.Suite().ID(), key.Public().Bytes())
			if string(rd[:]) != string(claims.ReportData) {
				b.Fatal("binding")
			}
			dec, err := bundle.Evaluate(claims)
			if err != nil {
				b.Fatal(err)
			}
			mem.Append(ctx, &audit.Record{Event: audit.EventAttest})
			tok, _, err := h.tokens.Issue(&ear.Claims{Grants: dec.Grants})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := h.tokens.Verify(tok); err != nil {
				b.Fatal(err)
			}
			dk, err := h.keys.GenerateDataKey(ctx, kms.MustBind("hello/records", kc))
			if err != nil {
				b.Fatal(err)
			}
			canon, _ := kc.Canonical()
			aad := seal.ReleaseAAD("r", "hello/records", canon)
			ct, err := key.Public().Seal(aad, dk.Plaintext.Reveal())
			if err != nil {
				b.Fatal(err)
			}
			mem.Append(ctx, &audit.Record{Event: audit.EventGenerateDataKey})
			if _, err := key.Open(aad, ct); err != nil {
				b.Fatal(err)
			}
			mem.records = mem.records[:0]
		}
	}
	benchratio.Time(b, "attest-release-grpc/in-process", overGRPC, inProcess)
}

// noLog acknowledges every record without keeping it: the unlogged baseline.
type noLog struct{}

func (noLog) Append(context.Context, *audit.Record) (uint64, error) { return 0, nil }

// BenchmarkRatioLogged compares the attest-plus-release rate with the durable audit log (group
// commit, fsync before every answer) against the same with a log that keeps nothing. Eight
// workloads run concurrently, as on a busy trustd, so group commit can batch.
func BenchmarkRatioLogged(b *testing.B) {
	ctx := context.Background()
	lg, err := posix.Open(ctx, posix.Options{Dir: filepath.Join(b.TempDir(), "audit")})
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close()
	logged, unlogged := startFull(b, nil, lg), startFull(b, nil, noLog{})
	kc := kms.Context{"tenant": "t"}
	run := func(h *harness) func(n int) {
		return func(n int) {
			const workers = 8
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < n; i += workers {
						c, err := sdk.New(ctx, sdk.Options{Conn: h.conn, Provider: hello()})
						if err != nil {
							b.Error(err)
							return
						}
						if _, _, err := c.GenerateDataKey(ctx, "hello/records", kc); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		}
	}
	benchratio.Throughput(b, "attest-release-logged/unlogged", run(logged), run(unlogged))
}
