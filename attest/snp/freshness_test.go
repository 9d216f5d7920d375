package snp

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/highwater"
)

// clockKDS is a fake AMD KDS whose answers the test changes as its clock moves.
type clockKDS struct {
	mu    sync.Mutex
	files map[string][]byte
	down  bool
	gets  int
}

func (k *clockKDS) Get(_ context.Context, url string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gets++
	if k.down {
		return nil, &StatusError{URL: url, Code: 503}
	}
	b, ok := k.files[url]
	if !ok {
		return nil, &StatusError{URL: url, Code: 404}
	}
	return b, nil
}

func (k *clockKDS) set(url string, b []byte, down bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.files[url], k.down = b, down
}

// numberedCRL is an ARK-signed CRL issued at from with CRL number n, revoking serials.
func (f *fixture) numberedCRL(t *testing.T, from time.Time, n int64, serials ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(n), ThisUpdate: from, NextUpdate: from.Add(365 * 24 * time.Hour),
		SignatureAlgorithm: x509.SHA384WithRSAPSS}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: from})
	}
	b, err := x509.CreateRevocationList(rand.Reader, tmpl, f.signer.Ark, f.signer.Keys.Ark)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCRLFreshness: AMD revokes the ASK (and with it every VCEK below it) in a CRL whose
// nextUpdate is months away. Every verifier refuses the chip within one refresh interval, also
// after a restart; an older CRL is never taken back; a KDS that stays down keeps the last good
// CRL only until the maximum age.
func TestCRLFreshness(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	raw := f.report(t, reportSpec{})
	r, err := parseReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	vcekPath := vcekURL("https://kds.test", Milan, r.pb.ChipId, f.tcb)
	crlPath := crlURL("https://kds.test", Milan, SignerVCEK)
	good := f.numberedCRL(t, t0, 1)
	revoked := f.numberedCRL(t, tVerify.Add(10*time.Minute), 2, f.signer.Ask.SerialNumber)
	kds := &clockKDS{files: map[string][]byte{vcekPath: f.signer.Vcek.Raw, crlPath: good}}
	cache := t.TempDir()
	fresh := Freshness{RefreshInterval: time.Hour, MaxAge: 6 * time.Hour}
	hw := &highwater.Mem{}
	replica := func(cacheDir string) *Verifier {
		v := mustNew(t, Options{Roots: f.roots, Getter: kds, KDSURL: "https://kds.test", CacheDir: cacheDir,
			Freshness: fresh, HighWater: hw, KDSRate: 1000, KDSBurst: 1000})
		return v
	}
	at := func(v *Verifier, now time.Time) error {
		v.wall = func() time.Time { return now } // the negative cache runs on the same clock
		_, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: raw}, attest.Options{Now: now})
		return err
	}
	v := replica(cache)
	if err := at(v, tVerify); err != nil {
		t.Fatal(err)
	}
	// AMD revokes the ASK at tVerify+10m.
	kds.set(crlPath, revoked, false)
	if err := at(v, tVerify.Add(30*time.Minute)); err != nil {
		t.Fatalf("within the interval the last CRL still serves: %v", err)
	}
	err = at(v, tVerify.Add(time.Hour))
	wantErr(t, err, attest.ErrNotAuthentic, "certificates.ask")
	if !strings.Contains(err.Error(), "revoked") {
		t.Errorf("err %v, want revoked", err)
	}
	// After a restart, with the KDS down, the cached (revoked) CRL still refuses.
	kds.set(crlPath, revoked, true)
	if err := at(replica(cache), tVerify.Add(70*time.Minute)); err == nil {
		t.Fatal("a restarted verifier accepted a revoked chain")
	}
	// A KDS mirror that serves the older CRL again is refused: by the same verifier (it keeps
	// the revoked one), by a restarted one (the disk cache), by another replica without a
	// cache (the shared high-water mark).
	kds.set(crlPath, good, false)
	for name, w := range map[string]*Verifier{"same": v, "restarted": replica(cache), "other replica": replica("")} {
		err := at(w, tVerify.Add(3*time.Hour))
		if err == nil {
			t.Fatalf("%s: accepted the older CRL", name)
		}
		if !strings.Contains(err.Error(), "revoked") && !strings.Contains(err.Error(), "older") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := at(replica(""), tVerify.Add(3*time.Hour)); !strings.Contains(err.Error(), "product Milan, vcek CRL") {
		t.Errorf("the refusal does not name the product and CRL: %v", err)
	}
}

// TestCRLMaxAge: a KDS that stays down keeps the last good CRL until the maximum age, then the
// verification fails closed naming the product and the CRL.
func TestCRLMaxAge(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	raw := f.report(t, reportSpec{})
	kds := &clockKDS{files: map[string][]byte{crlURL("https://kds.test", Milan, SignerVCEK): f.numberedCRL(t, t0, 1)}}
	v := mustNew(t, Options{Roots: f.roots, Getter: kds, KDSURL: "https://kds.test", KDSRate: 1000, KDSBurst: 1000,
		Freshness: Freshness{RefreshInterval: time.Hour, MaxAge: 6 * time.Hour}})
	ev := &attest.Evidence{TEE: attest.SEVSNP, Report: raw, Certificates: f.table(t)}
	at := func(now time.Time) error {
		v.wall = func() time.Time { return now }
		_, err := v.Verify(context.Background(), ev, attest.Options{Now: now})
		return err
	}
	if err := at(tVerify); err != nil {
		t.Fatal(err)
	}
	kds.mu.Lock()
	kds.down = true
	kds.mu.Unlock()
	for _, d := range []time.Duration{time.Hour, 3 * time.Hour, 6 * time.Hour} {
		if err := at(tVerify.Add(d)); err != nil {
			t.Fatalf("+%s: the last good CRL should serve: %v", d, err)
		}
	}
	gets := kds.gets
	err := at(tVerify.Add(6*time.Hour + time.Minute))
	wantErr(t, err, attest.ErrUnavailable, "certificates.crl")
	if !strings.Contains(err.Error(), "product Milan, vcek CRL") || !strings.Contains(err.Error(), "at most 6h0m0s") {
		t.Errorf("err %v", err)
	}
	if kds.gets == gets {
		t.Error("no refresh was attempted")
	}
	ages := v.CollateralAges()
	if len(ages) != 1 || ages[0].Platform != Milan || ages[0].Item != "crl-vcek" || !ages[0].FetchedAt.Equal(tVerify) || !ages[0].Failing {
		t.Errorf("ages %+v", ages)
	}
}

// TestCRLRefreshSingleFlight: concurrent verifications that find the CRL due share one request.
func TestCRLRefreshSingleFlight(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	raw := f.report(t, reportSpec{})
	kds := &clockKDS{files: map[string][]byte{crlURL("https://kds.test", Milan, SignerVCEK): f.numberedCRL(t, t0, 1)}}
	v := mustNew(t, Options{Roots: f.roots, Getter: kds, KDSURL: "https://kds.test", KDSRate: 1000, KDSBurst: 1000})
	ev := &attest.Evidence{TEE: attest.SEVSNP, Report: raw, Certificates: f.table(t)}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), ev, attest.Options{Now: tVerify}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if kds.gets != 1 {
		t.Errorf("%d KDS requests, want 1", kds.gets)
	}
}

// TestCRLRecheckOutstanding: a scheduled refresh picks up AMD's revocation without any new
// attestation, and the claims an outstanding token carries are refused at its next release.
func TestCRLRecheckOutstanding(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	crlPath := crlURL("https://kds.test", Milan, SignerVCEK)
	kds := &clockKDS{files: map[string][]byte{crlPath: f.numberedCRL(t, t0, 1)}}
	v := mustNew(t, Options{Roots: f.roots, Getter: kds, KDSURL: "https://kds.test", KDSRate: 1000, KDSBurst: 1000})
	ev := &attest.Evidence{TEE: attest.SEVSNP, Report: f.report(t, reportSpec{}), Certificates: f.table(t)}
	c, err := v.Verify(context.Background(), ev, attest.Options{Now: tVerify})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RecheckClaims(c, tVerify.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	kds.set(crlPath, f.numberedCRL(t, tVerify.Add(time.Minute), 2, f.signer.Ask.SerialNumber), false)
	v.RefreshCollateral(context.Background(), tVerify.Add(30*time.Minute)) // not due yet
	if err := v.RecheckClaims(c, tVerify.Add(30*time.Minute)); err != nil {
		t.Fatalf("before the refresh is due: %v", err)
	}
	v.RefreshCollateral(context.Background(), tVerify.Add(time.Hour))
	wantErr(t, v.RecheckClaims(c, tVerify.Add(time.Hour)), attest.ErrNotAuthentic, "certificates.ask")
	// Claims of other TEEs, or verified without a CRL, are not this verifier's to refuse.
	if err := v.RecheckClaims(&attest.Claims{TEE: attest.TDX}, tVerify); err != nil {
		t.Error(err)
	}
}

// TestCRLAfterBundleImport: an offline site imports a bundle whose CRL revokes the ASK; the
// verifier, which kept the old CRL for the refresh interval, reads the new one at trustd's next
// scheduled refresh, and outstanding tokens are refused then, not an hour later.
func TestCRLAfterBundleImport(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	dir := crlDir(t, f.numberedCRL(t, t0, 1))
	v := mustNew(t, Options{Roots: f.roots, CertsDir: dir})
	ev := &attest.Evidence{TEE: attest.SEVSNP, Report: f.report(t, reportSpec{}), Certificates: f.table(t)}
	c, err := v.Verify(context.Background(), ev, attest.Options{Now: tVerify})
	if err != nil {
		t.Fatal(err)
	}
	// The import puts the new CRL where the verifier reads its collateral.
	revoking := f.numberedCRL(t, tVerify.Add(time.Minute), 2, f.signer.Ask.SerialNumber)
	for _, n := range []string{"crl-vcek.der", "crl-vlek.der"} {
		if err := os.WriteFile(filepath.Join(dir, n), revoking, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v.RefreshCollateral(context.Background(), tVerify.Add(2*time.Minute))
	if err := v.RecheckClaims(c, tVerify.Add(2*time.Minute)); err != nil {
		t.Fatalf("without the import's reload the old CRL serves its interval: %v", err)
	}
	if err := v.LoadBundle(dir); err != nil {
		t.Fatal(err)
	}
	v.RefreshCollateral(context.Background(), tVerify.Add(3*time.Minute))
	wantErr(t, v.RecheckClaims(c, tVerify.Add(3*time.Minute)), attest.ErrNotAuthentic, "certificates.ask")
}
