package service_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/revoke"
	"github.com/medicus-cloud/trust/service"
)

func newAdmin(t *testing.T, h *harness, log service.AuditLog, set *revoke.Set) *service.Admin {
	t.Helper()
	a, err := service.NewAdmin(service.AdminOptions{Keys: h.keys, Audit: log, Revocations: set,
		Caller: func(context.Context) string { return "security-team CN=alice serial 1" }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A revocation made through one replica's admin API stops releases on another replica that
// shares the PostgreSQL store, within the other's poll interval.
func TestRevocationReachesOtherReplica(t *testing.T) {
	pg := pgtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const poll = 200 * time.Millisecond
	openSet := func() *revoke.Set {
		st, err := revoke.OpenPG(ctx, pg.DSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		s, err := revoke.Open(ctx, st, revoke.Options{PollInterval: poll, MaxStale: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		go s.Run(ctx)
		return s
	}
	setA, setB := openSet(), openSet()
	a := startCustom(t, nil, nil, func(o *service.Options) { o.Revocations = setA })
	b := startCustom(t, nil, nil, func(o *service.Options) {
		o.Revocations, o.Tokens = setB, a.tokens // replicas share the token keys
	})
	tok := a.attestToken(t)
	if _, err := b.getSecret(tok); err != nil {
		t.Fatalf("replica B before the revocation: %v", err)
	}
	adminLog := &memAudit{}
	start := time.Now()
	r, err := newAdmin(t, a, adminLog, setA).Revoke(ctx, &pb.RevokeRequest{Kind: "measurement", Value: attest.Hex(helloMeasurement()).String(), Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if rec := adminLog.last(); rec.Event != "admin.revoke" || rec.Names[0] != "measurement:"+r.GetRevocation().GetValue() {
		t.Errorf("admin record %+v", rec)
	}
	for {
		_, err := b.getSecret(tok)
		if d := service.DenialOf(err); d != nil && d.GetClaim() == "revocation" {
			t.Logf("replica B refused the token %v after the revocation on replica A (poll %v)", time.Since(start).Round(time.Millisecond), poll)
			break
		}
		if err != nil {
			t.Fatalf("replica B: %v", err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("replica B still releases 10s after the revocation")
		}
		time.Sleep(poll / 4)
	}
	// A replica started afterwards enforces it from the first call.
	c := startCustom(t, nil, nil, func(o *service.Options) { o.Revocations, o.Tokens = openSet(), a.tokens })
	if _, err := c.getSecret(tok); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("restarted replica: %v", err)
	}
}

// The revocation is recorded before it is stored: with the audit log down nothing changes.
func TestRevokeAuditedFirst(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.json")
	set := openRevocations(t, path, time.Now)
	h := start(t)
	down := &memAudit{fail: true}
	_, err := newAdmin(t, h, down, set).Revoke(ctx, &pb.RevokeRequest{Kind: "chip_id", Value: "ab"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("revoke with the audit log down: %v", err)
	}
	if list, _ := set.List(); len(list) != 0 {
		t.Fatalf("revocation stored without its audit record: %v", list)
	}
	for _, tc := range []struct {
		req   *pb.RevokeRequest
		field string
	}{
		{&pb.RevokeRequest{Kind: "colour", Value: "ab"}, "kind"},
		{&pb.RevokeRequest{Kind: "measurement", Value: "xyz"}, "value"},
		{&pb.RevokeRequest{Kind: "tcb", Value: "snp"}, "value"},
		{&pb.RevokeRequest{Kind: "advisory", Value: "INTEL SA"}, "value"},
		{&pb.RevokeRequest{Kind: "ppid", Value: "ab", Tee: "vax"}, "tee"},
	} {
		_, err := newAdmin(t, h, &memAudit{}, set).Revoke(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), tc.field+":") {
			t.Errorf("Revoke(%v) = %v, want InvalidArgument naming %s", tc.req, err, tc.field)
		}
	}
	log := &memAudit{}
	if _, err := newAdmin(t, h, log, set).Revoke(ctx, &pb.RevokeRequest{Kind: "chip_id", Value: "AB", Tee: "snp"}); err != nil {
		t.Fatal(err)
	}
	if r := log.last(); r.Verdict != audit.VerdictAllow || r.Names[0] != "sev-snp/chip_id:ab" {
		t.Errorf("record %+v", r)
	}
	resp, err := newAdmin(t, h, log, set).ListRevocations(ctx, &pb.ListRevocationsRequest{})
	if err != nil || len(resp.GetRevocations()) != 1 || resp.GetRevocations()[0].GetBy() != "security-team CN=alice serial 1" {
		t.Fatalf("ListRevocations = %v, %v", resp, err)
	}
}
