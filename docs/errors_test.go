package docs_test

// The error table of docs/errors.md, driven through a real service over gRPC: each row of
// vectors/errors.json names a case, the gRPC code, a text the message must contain and, for
// PermissionDenied, the claim of the attached Denial detail.

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/challenge"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/internal/trustdtest"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/service"
)

var approved = bytes.Repeat([]byte{0x4d}, 48)

type switchAudit struct {
	mu   sync.Mutex
	down bool
	n    uint64
}

func (a *switchAudit) Append(context.Context, *audit.Record) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return 0, errors.New("disk full")
	}
	a.n++
	return a.n, nil
}

func startService(t *testing.T) (pb.TrustClient, *switchAudit) {
	t.Helper()
	aud := &switchAudit{}
	td := trustdtest.StartTB(t, trustdtest.Options{
		Image: &trustdtest.Image{Name: "docs", Measurement: approved,
			Secrets: []string{"docs/token"}, DataKeys: []string{"docs/records"}},
		DataKeys: []string{"docs/records"},
		Secrets:  map[string]string{"docs/token": "s3cret"},
		Audit:    aud,
	})
	conn, err := grpc.NewClient(td.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewTrustClient(conn), aud
}

// attestReq builds an Attest request as the SDK does; tweak changes it before evidence is made.
func attestReq(t *testing.T, c pb.TrustClient, measurement []byte, rdOverride *[64]byte) (*pb.AttestRequest, *enclave.Key) {
	t.Helper()
	ch, err := c.GetChallenge(context.Background(), &pb.GetChallengeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := enclave.NewKey(seal.X25519)
	if err != nil {
		t.Fatal(err)
	}
	rd := k.ReportData(ch.GetNonce())
	if rdOverride != nil {
		rd = *rdOverride
	}
	ev, err := simguest.NewInsecure(simguest.Options{Measurement: measurement}).Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	return &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: wire.EvidenceToPB(ev), WorkloadKey: wire.WorkloadKeyToPB(k.Public())}, k
}

func TestErrorVectors(t *testing.T) {
	type vec struct {
		Case     string `json:"case"`
		Call     string `json:"call"`
		Code     string `json:"code"`
		Contains string `json:"message_contains"`
		Claim    string `json:"denial_claim,omitempty"`
	}
	var vs []vec
	vectors(t, "errors.json", &vs, func() {
		vs = []vec{
			{"nonce not ours", "Attest", "Unauthenticated", "nonce", ""},
			{"evidence missing", "Attest", "InvalidArgument", "evidence: missing", ""},
			{"workload key missing", "Attest", "InvalidArgument", "workload_key: missing", ""},
			{"report data does not bind nonce and key", "Attest", "PermissionDenied", "report_data", "report_data"},
			{"measurement not approved", "Attest", "PermissionDenied", "measurement", "measurement"},
			{"token not ours", "GetSecret", "Unauthenticated", "token", ""},
			{"name not granted", "GetSecret", "PermissionDenied", "docs/other", "grants"},
			{"key name invalid", "GenerateDataKey", "InvalidArgument", "key_name", ""},
			{"context invalid", "GenerateDataKey", "InvalidArgument", "context", ""},
			{"request id invalid", "GenerateDataKey", "InvalidArgument", "request_id", ""},
			{"wrapped key rejected", "UnwrapDataKey", "InvalidArgument", "wrapped", ""},
			{"audit log down", "GenerateDataKey", "Unavailable", "nothing was released", ""},
		}
	})
	c, aud := startService(t)
	ctx := context.Background()
	good, key := attestReq(t, c, approved, nil)
	att, err := c.Attest(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	tok := att.GetToken()
	kc := map[string]string{"tenant": "docs"}

	// The success path, as docs/protocol.md describes it: open the sealed data key with the
	// workload key under the release AAD.
	resp, err := c.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "docs/records", Context: kc, RequestId: "docs-1"})
	if err != nil {
		t.Fatal(err)
	}
	canon, _ := kms.Context(kc).Canonical()
	dk, err := key.Open(seal.ReleaseAAD("docs-1", "docs/records", canon), resp.GetDataKey().GetCiphertext())
	if err != nil || len(dk) != kms.DataKeySize {
		t.Fatalf("sealed data key does not open under the documented AAD: %v", err)
	}

	calls := map[string]func() error{
		"nonce not ours": func() error {
			r, _ := attestReq(t, c, approved, nil)
			r.Nonce = bytes.Repeat([]byte{9}, challenge.Size)
			_, err := c.Attest(ctx, r)
			return err
		},
		"evidence missing": func() error {
			r, _ := attestReq(t, c, approved, nil)
			r.Evidence = nil
			_, err := c.Attest(ctx, r)
			return err
		},
		"workload key missing": func() error {
			r, _ := attestReq(t, c, approved, nil)
			r.WorkloadKey = nil
			_, err := c.Attest(ctx, r)
			return err
		},
		"report data does not bind nonce and key": func() error {
			r, _ := attestReq(t, c, approved, &[64]byte{1})
			_, err := c.Attest(ctx, r)
			return err
		},
		"measurement not approved": func() error {
			r, _ := attestReq(t, c, []byte("tampered image"), nil)
			_, err := c.Attest(ctx, r)
			return err
		},
		"token not ours": func() error {
			_, err := c.GetSecret(ctx, &pb.GetSecretRequest{Token: []byte("garbage"), Name: "docs/token"})
			return err
		},
		"name not granted": func() error {
			_, err := c.GetSecret(ctx, &pb.GetSecretRequest{Token: tok, Name: "docs/other"})
			return err
		},
		"key name invalid": func() error {
			_, err := c.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "../docs", Context: kc})
			return err
		},
		"context invalid": func() error {
			_, err := c.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "docs/records", Context: map[string]string{"Tenant": "docs"}})
			return err
		},
		"request id invalid": func() error {
			_, err := c.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "docs/records", Context: kc, RequestId: "has space"})
			return err
		},
		"wrapped key rejected": func() error {
			_, err := c.UnwrapDataKey(ctx, &pb.UnwrapDataKeyRequest{Token: tok, KeyName: "docs/records", Context: kc, WrappedKey: []byte("not a wrapped key")})
			return err
		},
		"audit log down": func() error {
			aud.mu.Lock()
			aud.down = true
			aud.mu.Unlock()
			defer func() { aud.mu.Lock(); aud.down = false; aud.mu.Unlock() }()
			_, err := c.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "docs/records", Context: kc})
			return err
		},
	}
	for _, v := range vs {
		t.Run(v.Case, func(t *testing.T) {
			call, ok := calls[v.Case]
			if !ok {
				t.Fatalf("no driver for case %q", v.Case)
			}
			err := call()
			st := status.Convert(err)
			if st.Code().String() != v.Code || !strings.Contains(st.Message(), v.Contains) {
				t.Fatalf("%v: %s %q, want %s containing %q", v.Call, st.Code(), st.Message(), v.Code, v.Contains)
			}
			d := service.DenialOf(err)
			switch {
			case v.Claim == "" && d != nil && st.Code() != codes.PermissionDenied:
				t.Errorf("unexpected denial detail %v", d)
			case v.Claim != "" && (d == nil || d.GetClaim() != v.Claim):
				t.Errorf("denial detail %v, want claim %q", d, v.Claim)
			}
		})
	}
}
