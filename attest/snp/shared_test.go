package snp

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/collstore"
	"github.com/medicus-cloud/trust/attest/highwater"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
)

// TestSharedCollateral: replicas on one PostgreSQL share VCEKs and CRLs fetched from the KDS
// (issue 16). One fetch per CRL and refresh interval serves the fleet; whatever a replica loads
// is verified again; replicas refreshing at once make one KDS request.
func TestSharedCollateral(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	raw := f.report(t, reportSpec{}) // no certificates: the VCEK comes from the KDS
	r, err := parseReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	crlPath := crlURL("https://kds.test", Milan, SignerVCEK)
	good := f.numberedCRL(t, t0, 1)
	revoked := f.numberedCRL(t, tVerify.Add(10*time.Minute), 2, f.signer.Ask.SerialNumber)
	kds := &clockKDS{files: map[string][]byte{vcekURL("https://kds.test", Milan, r.pb.ChipId, f.tcb): f.signer.Vcek.Raw, crlPath: good}}
	pg := pgtest.Start(t)
	var stores []*collstore.PG
	replica := func() *Verifier {
		s, err := collstore.OpenPG(ctx, pg.DSN(), collstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		hw, err := highwater.OpenPG(ctx, pg.DSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(); hw.Close() })
		stores = append(stores, s)
		return mustNew(t, Options{Roots: f.roots, Getter: kds, KDSURL: "https://kds.test", Store: s, HighWater: hw,
			Freshness: Freshness{RefreshInterval: time.Hour, MaxAge: 6 * time.Hour}, KDSRate: 1000, KDSBurst: 1000})
	}
	at := func(v *Verifier, d time.Duration) error {
		now := tVerify.Add(d)
		v.wall = func() time.Time { return now }
		_, err := v.Verify(ctx, &attest.Evidence{TEE: attest.SEVSNP, Report: raw}, attest.Options{Now: now})
		return err
	}
	gets := func(t *testing.T, want int, step func()) {
		t.Helper()
		kds.mu.Lock()
		n := kds.gets
		kds.mu.Unlock()
		step()
		kds.mu.Lock()
		defer kds.mu.Unlock()
		if got := kds.gets - n; got != want {
			t.Errorf("%d KDS requests, want %d", got, want)
		}
	}
	refused := func(t *testing.T, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("err %v, want the revoked ASK refused", err)
		}
	}
	a, b := replica(), replica()

	// (1) Replica A fetches the VCEK and the CRL; replica B verifies the chip without the KDS.
	gets(t, 2, func() {
		if err := at(a, 0); err != nil {
			t.Fatal(err)
		}
	})
	gets(t, 0, func() {
		if err := at(b, time.Minute); err != nil {
			t.Fatal(err)
		}
	})

	// (2) AMD revokes the ASK; once the interval passes one fetch serves both, and both refuse.
	kds.set(crlPath, revoked, false)
	gets(t, 1, func() {
		refused(t, at(a, 61*time.Minute))
		refused(t, at(b, 62*time.Minute))
	})

	// (3) A tampered row is refused and the replica fetches itself: a bad signature, then the
	// pre-revocation CRL presented as fetched just now (below the high-water mark).
	key := crlStoreKey(Milan, SignerVCEK)
	bad := bytes.Clone(revoked)
	bad[len(bad)-1] ^= 1
	if err := stores[0].Store(ctx, key, map[string][]byte{storeCRLFile: bad}, tVerify.Add(63*time.Minute)); err != nil {
		t.Fatal(err)
	}
	gets(t, 1, func() { refused(t, at(replica(), 64*time.Minute)) })
	if err := stores[0].Store(ctx, key, map[string][]byte{storeCRLFile: good}, tVerify.Add(65*time.Minute)); err != nil {
		t.Fatal(err)
	}
	gets(t, 1, func() { refused(t, at(replica(), 66*time.Minute)) })

	// (4) Both replicas refresh at once: one KDS request.
	gets(t, 1, func() {
		var wg sync.WaitGroup
		for _, v := range []*Verifier{a, b} {
			wg.Go(func() { refused(t, at(v, 3*time.Hour)) })
		}
		wg.Wait()
	})
}
