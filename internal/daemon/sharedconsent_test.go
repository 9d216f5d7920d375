package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/consent"
	"github.com/medicus-cloud/trust/consent/consenttest"
)

// With the postgres audit backend, the replicas share one consent registry: a withdrawal made
// on replica A is refused on replica B within its poll interval, and what a replica kept in its
// data directory before is merged in at start, withdrawals first of all.
func TestConsentSharedByReplicas(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Start(t)
	env := Env{AuditDSN: pg.DSN()}
	open := func(dataDir string) *duties {
		t.Helper()
		d := &Daemon{cfg: &Config{DataDir: dataDir, Audit: AuditConfig{Backend: "postgres"}}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		t.Cleanup(func() { d.Close() })
		du, err := d.openDuties(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		return du
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ufr := consenttest.New("uk-freiburg", "ufr-2026")
	// Replica A ran with its registry in its data directory, where one withdrawal was made.
	dirA := t.TempDir()
	before, err := consent.Open(filepath.Join(dirA, "consent.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := before.RegisterKey(ufr.Tenant, ufr.KeyID, ufr.PublicKeyPEM()); err != nil {
		t.Fatal(err)
	}
	if err := before.Withdraw(ufr.Tenant, "st-old", now); err != nil {
		t.Fatal(err)
	}
	a, b := open(dirA), open(t.TempDir())

	req := consent.Requirement{Purposes: []string{consent.Treatment}, Recipient: "hello"}
	rel := consent.Release{Tenant: ufr.Tenant, Patient: "psn-7f3a", Now: now}
	check := func(r *consent.Registry, id string) error {
		_, err := r.Check(ufr.Sign(ufr.Claims(id, "psn-7f3a", "hello", now, consent.Treatment)), req, rel)
		return err
	}
	withdrawn := func(err error) bool {
		var d *consent.Denial
		return errors.As(err, &d) && d.Claim == "consent.withdrawn"
	}
	if err := check(b.consent, "st-old"); !withdrawn(err) {
		t.Fatalf("replica B on the withdrawal A kept locally: %v", err)
	}
	if err := check(b.consent, "st-new"); err != nil {
		t.Fatalf("replica B on a valid statement under A's merged key: %v", err)
	}
	if err := a.consent.Withdraw(ufr.Tenant, "st-new", now); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for !withdrawn(check(b.consent, "st-new")) {
		if time.Since(start) > 2*consent.DefaultPollInterval+3*time.Second {
			t.Fatal("replica B still accepts a statement withdrawn on replica A")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("replica B refused the withdrawn statement %v after the withdrawal on A", time.Since(start).Round(time.Millisecond))
}
