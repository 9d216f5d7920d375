package snp

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// memStore is an in-memory attest.CollateralStore that keeps whatever fetch time it is given,
// as a shared table does.
type memStore struct {
	mu    sync.Mutex
	files map[string]map[string][]byte
	at    map[string]time.Time
}

func (m *memStore) Load(_ context.Context, key string) (map[string][]byte, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.files[key], m.at[key], nil
}

func (m *memStore) Store(_ context.Context, key string, files map[string][]byte, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files, m.at = map[string]map[string][]byte{}, map[string]time.Time{}
	}
	if prev, ok := m.at[key]; ok && !prev.Before(at) {
		return nil // only a later fetch replaces a row (as attest/collstore)
	}
	m.files[key], m.at[key] = files, at
	return nil
}

// TestStoredCRLFutureFetchTime: a shared row whose fetch time lies in the future (a replica
// whose clock runs ahead, or a tampered row) must not count as freshly fetched: otherwise no
// replica fetches AMD's CRL again until that time, and an ASK revoked since stays accepted.
func TestStoredCRLFutureFetchTime(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	raw := f.report(t, reportSpec{})
	r, err := parseReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	crlPath := crlURL("https://kds.test", Milan, SignerVCEK)
	good := f.numberedCRL(t, t0, 1)
	revoked := f.numberedCRL(t, tVerify.Add(10*time.Minute), 2, f.signer.Ask.SerialNumber)
	kds := &clockKDS{files: map[string][]byte{vcekURL("https://kds.test", Milan, r.pb.ChipId, f.tcb): f.signer.Vcek.Raw, crlPath: revoked}}
	store := &memStore{}
	// The pre-revocation CRL, recorded as fetched 30 days from now.
	if err := store.Store(ctx, crlStoreKey(Milan, SignerVCEK), map[string][]byte{storeCRLFile: good}, tVerify.Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, Options{Roots: f.roots, Getter: kds, KDSURL: "https://kds.test", Store: store,
		Freshness: Freshness{RefreshInterval: time.Hour, MaxAge: 6 * time.Hour}, KDSRate: 1000, KDSBurst: 1000})
	for _, d := range []time.Duration{time.Hour, 3 * time.Hour} {
		now := tVerify.Add(d)
		v.wall = func() time.Time { return now }
		_, err := v.Verify(ctx, &attest.Evidence{TEE: attest.SEVSNP, Report: raw}, attest.Options{Now: now})
		if err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("at +%s: err %v, want the revoked ASK refused", d, err)
		}
	}
}

// TestCRLRecheckOtherReplica: a replica that has not verified SNP evidence itself (a restart, or
// the load balancer sent the Attest to another replica) must still check the claims of
// outstanding tokens against AMD's CRL: its scheduled refresh loads the CRL the claims need, and
// a revoked ASK is refused.
func TestCRLRecheckOtherReplica(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	crlPath := crlURL("https://kds.test", Milan, SignerVCEK)
	kds := &clockKDS{files: map[string][]byte{crlPath: f.numberedCRL(t, t0, 1)}}
	issuer := mustNew(t, Options{Roots: f.roots, Getter: kds, KDSURL: "https://kds.test", KDSRate: 1000, KDSBurst: 1000})
	ev := &attest.Evidence{TEE: attest.SEVSNP, Report: f.report(t, reportSpec{}), Certificates: f.table(t)}
	c, err := issuer.Verify(context.Background(), ev, attest.Options{Now: tVerify})
	if err != nil {
		t.Fatal(err)
	}
	kds.set(crlPath, f.numberedCRL(t, tVerify.Add(time.Minute), 2, f.signer.Ask.SerialNumber), false)
	other := mustNew(t, Options{Roots: f.roots, Getter: kds, KDSURL: "https://kds.test", KDSRate: 1000, KDSBurst: 1000})
	_ = other.RecheckClaims(c, tVerify.Add(2*time.Minute)) // nothing loaded yet: no network here
	other.RefreshCollateral(context.Background(), tVerify.Add(3*time.Minute))
	wantErr(t, other.RecheckClaims(c, tVerify.Add(3*time.Minute)), attest.ErrNotAuthentic, "certificates.ask")
}

// TestTurinMaskedChipIDClaim: the host decides whether CHIP_ID is masked (SNP_CONFIG), so the
// chip_id claim of one Turin chip must read the same either way; otherwise a chip revoked by
// its chip_id (trustctl revoke chip_id) verifies again once the host masks CHIP_ID.
func TestTurinMaskedChipIDClaim(t *testing.T) {
	f := newFixture(t, Turin, fixtureOpts{})
	v := mustNew(t, Options{Roots: f.roots, Revocation: InsecureRevocationSkip})
	var ids []string
	for _, mask := range []bool{false, true} {
		ev := &attest.Evidence{TEE: attest.SEVSNP, Report: f.report(t, reportSpec{mask: mask}), Certificates: f.table(t)}
		c, err := v.Verify(context.Background(), ev, attest.Options{Now: tVerify})
		if err != nil {
			t.Fatalf("mask=%v: %v", mask, err)
		}
		ids = append(ids, c.Platform[ClaimChipID])
	}
	if ids[0] != ids[1] {
		t.Errorf("chip_id unmasked %s, masked %s: want the same", ids[0], ids[1])
	}
}
