package tdx_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/collstore"
	"github.com/medicus-cloud/trust/attest/highwater"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
)

// Replicas on one PostgreSQL share fetched collateral (issue 16): one fetch per platform and
// refresh interval serves the fleet, whatever a replica loads is verified again, and replicas
// refreshing at once make one PCS fetch.
func TestSharedCollateral(t *testing.T) {
	f := fx(t)
	ctx := context.Background()
	good, _ := f.Collateral(nil, nil, false)
	revoked, _ := f.Collateral(nil, nil, true)
	newer := f.TCBInfo()
	newer.TCBEvaluationDataNumber = 18
	newerQE := f.QEIdentity()
	newerQE.TCBEvaluationDataNumber = 18
	revoked18, _ := f.Collateral(newer, newerQE, true) // a TCB recovery after the revocation
	pcs := newPCS(t, good)
	pg := pgtest.Start(t)
	var stores []*collstore.PG
	replica := func() *tdx.Verifier {
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
		fr := hourly
		fr.Store, fr.HighWater = s, hw
		return verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, "", fr)
	}
	q := f.Quote(f.DefaultSpec())
	at := func(v *tdx.Verifier, d time.Duration) error {
		_, err := v.Verify(ctx, ev(q, nil), attest.Options{Now: f.Now.Add(d)})
		return err
	}
	fetches := func(t *testing.T, want int64, perSet int64, step func()) {
		t.Helper()
		h := pcs.Hits.Load()
		step()
		if got := pcs.Hits.Load() - h; got != want*perSet {
			t.Errorf("%d PCS requests, want %d (%d sets)", got, want*perSet, want)
		}
	}
	refused := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, attest.ErrNotAuthentic) || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("err %v, want the revoked PCK refused", err)
		}
	}
	a, b := replica(), replica()

	// (1) Replica A fetches; replica B verifies the same platform without any PCS request.
	if err := at(a, 0); err != nil {
		t.Fatal(err)
	}
	perSet := pcs.Hits.Load()
	fetches(t, 0, perSet, func() {
		if err := at(b, time.Minute); err != nil {
			t.Fatal(err)
		}
	})

	// (2) Intel revokes the PCK; once the interval passes, one fetch serves both replicas and
	// both refuse it.
	pcs.Set(revoked)
	fetches(t, 1, perSet, func() {
		refused(t, at(a, 61*time.Minute))
		refused(t, at(b, 62*time.Minute))
	})

	// (3) A tampered row is refused and the replica fetches itself: a bad signature, then the
	// pre-revocation set presented as fetched just now, below the high-water mark.
	key, err := intel.StoreKey(attest.TDX, "90c06f000000", intel.CAPlatform)
	if err != nil {
		t.Fatal(err)
	}
	badSig := maps.Clone(good.Map())
	i := bytes.Index(badSig[intel.FileTCBInfo], []byte(`"signature":"`)) + len(`"signature":"`)
	badSig[intel.FileTCBInfo] = bytes.Clone(badSig[intel.FileTCBInfo])
	badSig[intel.FileTCBInfo][i] ^= 1 // another hex digit
	if err := stores[0].Store(ctx, key, badSig, f.Now.Add(63*time.Minute)); err != nil {
		t.Fatal(err)
	}
	fetches(t, 1, perSet, func() { refused(t, at(replica(), 64*time.Minute)) })

	pcs.Set(revoked18)
	fetches(t, 1, perSet, func() { refused(t, at(a, 2*time.Hour+5*time.Minute)) }) // the high-water mark moves to 18
	if err := stores[0].Store(ctx, key, good.Map(), f.Now.Add(2*time.Hour+6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	fetches(t, 1, perSet, func() { refused(t, at(replica(), 2*time.Hour+7*time.Minute)) })

	// (4) Both replicas refresh at once: one PCS fetch.
	fetches(t, 1, perSet, func() {
		var wg sync.WaitGroup
		for _, v := range []*tdx.Verifier{a, b} {
			wg.Go(func() { refused(t, at(v, 4*time.Hour)) })
		}
		wg.Wait()
	})

	// (5) A store that fails is only a lost optimization: the replica fetches and verifies
	// itself (here with its own high-water mark, since the shared one fails closed).
	gone := pgtest.Start(t)
	var failed []string
	s, err := collstore.OpenPG(ctx, gone.DSN(), collstore.Options{OnError: func(op, _ string, _ error) { failed = append(failed, op) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gone.Stop("immediate")
	fr := hourly
	fr.Store, fr.HighWater = s, &highwater.Mem{}
	lone := verifierAt(t, pcs, tdx.Options{Root: f.PKI.Root}, "", fr)
	fetches(t, 1, perSet, func() { refused(t, at(lone, 5*time.Hour)) })
	// The last load asks for the set a TCB recovery replaced (intel previous.go).
	if want := []string{"load", "lease", "store", "load"}; !slices.Equal(failed, want) {
		t.Errorf("store failures reported: %v, want %v", failed, want)
	}
}
