package consent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/consent"
	"github.com/medicus-cloud/trust/consent/consenttest"
	"github.com/medicus-cloud/trust/internal/shareddoc"
)

// downStore fails every read while down is set, as an unreachable database does.
type downStore struct {
	consent.Store
	mu   sync.Mutex
	down bool
}

func (d *downStore) Read(ctx context.Context) ([]byte, error) {
	d.mu.Lock()
	down := d.down
	d.mu.Unlock()
	if down {
		return nil, errors.New("connection refused")
	}
	return d.Store.Read(ctx)
}

func (d *downStore) set(down bool) { d.mu.Lock(); d.down = down; d.mu.Unlock() }

// Two replicas on one store, file or PostgreSQL: a withdrawal made on one is refused by the
// other within its poll interval; keys registered concurrently on both are all kept; a replica
// that cannot read the store for longer than MaxStale refuses every check until it reads again.
func TestWithdrawalReachesEveryReplica(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Start(t)
	file := filepath.Join(t.TempDir(), "consent.json")
	stores := map[string]func() consent.Store{
		"file": func() consent.Store { return &shareddoc.File{Path: file} },
		"postgres": func() consent.Store {
			s, err := shareddoc.OpenPG(ctx, pg.DSN(), "consent")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			o := consent.Options{PollInterval: 20 * time.Millisecond, MaxStale: time.Minute, Now: clock}
			bStore := &downStore{Store: open()}
			a, err := consent.OpenStore(ctx, open(), o)
			if err != nil {
				t.Fatal(err)
			}
			b, err := consent.OpenStore(ctx, bStore, o)
			if err != nil {
				t.Fatal(err)
			}
			rctx, stop := context.WithCancel(ctx)
			defer stop()
			go a.Run(rctx)
			go b.Run(rctx)

			ufr, ulm := consenttest.New("uk-freiburg", "ufr-2026"), consenttest.New("uk-ulm", "ulm-2026")
			var wg sync.WaitGroup
			wg.Go(func() {
				if err := a.RegisterKey(ufr.Tenant, ufr.KeyID, ufr.PublicKeyPEM()); err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() {
				if err := b.RegisterKey(ulm.Tenant, ulm.KeyID, ulm.PublicKeyPEM()); err != nil {
					t.Error(err)
				}
			})
			wg.Wait()

			req := consent.Requirement{Purposes: []string{consent.Treatment}, Recipient: "hello"}
			rel := consent.Release{Tenant: "uk-freiburg", Patient: "psn-7f3a", Now: now}
			st := ufr.Sign(ufr.Claims("st-1", "psn-7f3a", "hello", now, consent.Treatment))
			relUlm := consent.Release{Tenant: "uk-ulm", Patient: "psn-7f3a", Now: now}
			stUlm := ulm.Sign(ulm.Claims("st-2", "psn-7f3a", "hello", now, consent.Treatment))
			eventually := func(what string, ok func() bool) {
				t.Helper()
				for deadline := time.Now().Add(5 * time.Second); !ok(); {
					if time.Now().After(deadline) {
						t.Fatalf("%s: not within 5 s", what)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			for _, r := range []*consent.Registry{a, b} {
				eventually("both keys on both replicas", func() bool {
					_, e1 := r.Check(st, req, rel)
					_, e2 := r.Check(stUlm, req, relUlm)
					return e1 == nil && e2 == nil
				})
			}

			if err := a.Withdraw("uk-freiburg", "st-1", now); err != nil {
				t.Fatal(err)
			}
			var d *consent.Denial
			if _, err := a.Check(st, req, rel); !errors.As(err, &d) || d.Claim != "consent.withdrawn" {
				t.Fatalf("on the withdrawing replica: %v", err)
			}
			eventually("the withdrawal on the other replica", func() bool {
				_, err := b.Check(st, req, rel)
				return errors.As(err, &d) && d.Claim == "consent.withdrawn"
			})

			// B loses its store: it answers from what it read until MaxStale, then refuses.
			bStore.set(true)
			time.Sleep(50 * time.Millisecond)
			if _, err := b.Check(stUlm, req, relUlm); err != nil {
				t.Fatalf("within MaxStale: %v", err)
			}
			mu.Lock()
			now = now.Add(2 * time.Minute)
			mu.Unlock()
			if _, err := b.Check(stUlm, req, relUlm); !errors.Is(err, consent.ErrStale) || !errors.Is(err, attest.ErrUnavailable) {
				t.Fatalf("past MaxStale: %v, want ErrStale (Unavailable)", err)
			}
			bStore.set(false)
			eventually("answers again once the store reads", func() bool {
				_, err := b.Check(stUlm, req, relUlm)
				return err == nil
			})
		})
	}
}

// Moving to a shared store keeps every withdrawal and key of a replica's old state file; a key
// the shared store already has wins.
func TestMerge(t *testing.T) {
	dir := t.TempDir()
	old, err := consent.Open(filepath.Join(dir, "consent.json"))
	if err != nil {
		t.Fatal(err)
	}
	ufr := consenttest.New("uk-freiburg", "ufr-2026")
	if err := old.RegisterKey(ufr.Tenant, ufr.KeyID, ufr.PublicKeyPEM()); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if err := old.Withdraw("uk-freiburg", "st-1", now); err != nil {
		t.Fatal(err)
	}
	shared, err := consent.OpenStore(context.Background(), &shareddoc.File{Path: filepath.Join(dir, "shared.json")}, consent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other := consenttest.New("uk-freiburg", "ufr-2026") // the same key ID, another key
	if err := shared.RegisterKey(other.Tenant, other.KeyID, other.PublicKeyPEM()); err != nil {
		t.Fatal(err)
	}
	n, err := shared.Merge(filepath.Join(dir, "consent.json"))
	if err != nil || n != 1 {
		t.Fatalf("Merge = %d, %v; want the one withdrawal", n, err)
	}
	if n, err := shared.Merge(filepath.Join(dir, "consent.json")); err != nil || n != 0 {
		t.Fatalf("second Merge = %d, %v; want nothing new", n, err)
	}
	if n, err := shared.Merge(filepath.Join(dir, "missing.json")); err != nil || n != 0 {
		t.Fatalf("Merge of a missing file = %d, %v", n, err)
	}
	req := consent.Requirement{Purposes: []string{consent.Treatment}, Recipient: "hello"}
	rel := consent.Release{Tenant: "uk-freiburg", Patient: "psn-7f3a", Now: now}
	var d *consent.Denial
	if _, err := shared.Check(other.Sign(other.Claims("st-1", "psn-7f3a", "hello", now, consent.Treatment)), req, rel); !errors.As(err, &d) || d.Claim != "consent.withdrawn" {
		t.Fatalf("merged withdrawal: %v", err)
	}
	if _, err := shared.Check(ufr.Sign(ufr.Claims("st-3", "psn-7f3a", "hello", now, consent.Treatment)), req, rel); !errors.As(err, &d) || d.Claim != "consent.signature" {
		t.Fatalf("the old file's key replaced the shared store's: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "shared.json")); err != nil {
		t.Fatal(err)
	}
}
