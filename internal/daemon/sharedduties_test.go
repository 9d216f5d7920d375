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
	"github.com/medicus-cloud/trust/breakglass"
	"github.com/medicus-cloud/trust/consent"
	"github.com/medicus-cloud/trust/consent/consenttest"
)

// With the postgres audit backend, the replicas share one consent registry: a withdrawal made
// on replica A is refused on replica B within its poll interval, and what a replica kept in its
// data directory before is merged in at start, withdrawals first of all.
func TestConsentSharedByReplicas(t *testing.T) {
	pg := pgtest.Start(t)
	env := Env{AuditDSN: pg.DSN()}
	open := func(dataDir string) *duties { return openSharedDuties(t, dataDir, env) }
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

// openSharedDuties opens the duties state of a replica with the postgres audit backend.
func openSharedDuties(t *testing.T, dataDir string, env Env) *duties {
	t.Helper()
	d := &Daemon{cfg: &Config{DataDir: dataDir, Audit: AuditConfig{Backend: "postgres"}}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	t.Cleanup(func() { d.Close() })
	du, err := d.openDuties(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go du.consent.Run(ctx) // as Serve does
	return du
}

// Break-glass requests are shared too: one requested before in a replica's data directory is
// merged at start, an approval on replica A opens releases on replica B at once, and a review
// on B closes them on A at once.
func TestBreakGlassSharedByReplicas(t *testing.T) {
	pg := pgtest.Start(t)
	env := Env{AuditDSN: pg.DSN()}
	now := time.Now()
	dirA := t.TempDir()
	before, err := breakglass.Open(filepath.Join(dirA, "breakglass.json"))
	if err != nil {
		t.Fatal(err)
	}
	old, err := before.Request(breakglass.Entry{Kind: breakglass.KindBreakGlass, Tenant: "uk-freiburg", KeyName: "ehr/records",
		Reason: "unconscious patient in the ER", Duration: 30 * time.Minute}, "alice", now)
	if err != nil {
		t.Fatal(err)
	}
	a, b := openSharedDuties(t, dirA, env), openSharedDuties(t, t.TempDir(), env)
	if _, err := b.breakGlass.Approve(old.ID, breakglass.KindBreakGlass, "bob", now, nil); err != nil {
		t.Fatalf("approving on B the request A kept locally: %v", err)
	}
	if _, err := a.breakGlass.Use(old.ID, "uk-freiburg", "ehr/records", time.Hour, now); err != nil {
		t.Fatalf("release on A under the approval made on B: %v", err)
	}
	if _, err := b.breakGlass.Review(old.ID, breakglass.Justified, "carol", now); err != nil {
		t.Fatal(err)
	}
	if _, err := a.breakGlass.Use(old.ID, "uk-freiburg", "ehr/records", time.Hour, now); !errors.Is(err, breakglass.ErrExpired) {
		t.Fatalf("release on A after the review on B: %v, want refused", err)
	}
	e, err := a.breakGlass.Get(old.ID)
	if err != nil || e.Releases != 1 || e.ReviewedBy != "carol" {
		t.Fatalf("entry as A reads it: %+v, %v", e, err)
	}
}
