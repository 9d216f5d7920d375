package snp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// fakeKDS serves one chip's VCEK and the product CRLs the way kdsintf.amd.com lays them out, and
// throttles the first request of each path with 429 or 503.
type fakeKDS struct {
	mu       sync.Mutex
	files    map[string][]byte // request URI -> body
	throttle map[string]int    // request URI -> status for the first request
	seen     map[string]int
}

func (k *fakeKDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	uri := r.URL.RequestURI()
	k.seen[uri]++
	if code := k.throttle[uri]; code != 0 && k.seen[uri] == 1 {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(code)
		return
	}
	b, ok := k.files[uri]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write(b)
}

func TestKDS(t *testing.T) {
	for _, product := range []string{Milan, Turin} {
		t.Run(product, func(t *testing.T) {
			f := newFixture(t, product, fixtureOpts{})
			raw := f.report(t, reportSpec{})
			r, err := parseReport(raw)
			if err != nil {
				t.Fatal(err)
			}
			vcekPath := vcekURL("", product, r.pb.ChipId, f.tcb)
			crlPath := crlURL("", product, SignerVCEK)
			kds := &fakeKDS{
				files:    map[string][]byte{vcekPath: f.signer.Vcek.Raw, crlPath: f.crl(t, t0, 365*24*time.Hour)},
				throttle: map[string]int{vcekPath: http.StatusTooManyRequests, crlPath: http.StatusServiceUnavailable},
				seen:     map[string]int{},
			}
			srv := httptest.NewServer(kds)
			defer srv.Close()
			var slept []time.Duration
			getter := &HTTPGetter{Client: srv.Client(), Sleep: func(_ context.Context, d time.Duration) error {
				slept = append(slept, d)
				return nil
			}}
			cache := t.TempDir()
			v := mustNew(t, Options{Roots: f.roots, Getter: getter, KDSURL: srv.URL, CacheDir: cache})
			if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: raw}, attest.Options{Now: tVerify}); err != nil {
				t.Fatal(err)
			}
			if len(slept) != 2 || slept[0] != 7*time.Second {
				t.Errorf("backoff waits %v, want two of 7s (Retry-After)", slept)
			}
			if kds.seen[vcekPath] != 2 || kds.seen[crlPath] != 2 {
				t.Errorf("requests %v", kds.seen)
			}
			// A second verifier with only the cache, and no network, verifies too.
			v2 := mustNew(t, Options{Roots: f.roots, CacheDir: cache})
			if _, err := v2.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: raw}, attest.Options{Now: tVerify}); err != nil {
				t.Fatalf("from cache: %v", err)
			}
			// The cache layout doubles as an offline collateral directory.
			v3 := mustNew(t, Options{Roots: f.roots, CertsDir: cache, Getter: failGetter{t}})
			if _, err := v3.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: raw}, attest.Options{Now: tVerify}); err != nil {
				t.Fatalf("offline: %v", err)
			}
		})
	}
}

func TestKDSFailures(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	raw := f.report(t, reportSpec{})
	tests := []struct {
		name    string
		handler http.HandlerFunc
		kind    error
	}{
		{name: "unknown chip", handler: func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, kind: attest.ErrNotAuthentic},
		{name: "always throttled", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }, kind: attest.ErrUnavailable},
		{name: "server error", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }, kind: attest.ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			getter := &HTTPGetter{Client: srv.Client(), Attempts: 3, Sleep: func(context.Context, time.Duration) error { return nil }}
			v := mustNew(t, Options{Roots: f.roots, Getter: getter, KDSURL: srv.URL})
			_, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: raw}, attest.Options{Now: tVerify})
			wantErr(t, err, tc.kind, "certificates.vcek")
		})
	}
}

func TestHTTPGetterHonoursContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	g := &HTTPGetter{Client: srv.Client(), Sleep: func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() }}
	if _, err := g.Get(ctx, srv.URL+"/x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

// TestOfflineFlatDir: a collateral directory with flat vcek.pem and crl.der verifies a report that
// carries no certificates, without the network.
func TestOfflineFlatDir(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	dir := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("vcek.pem", pemCert(f.signer.Vcek.Raw))
	write("crl.der", f.crl(t, t0, 365*24*time.Hour))
	v := mustNew(t, Options{Roots: f.roots, CertsDir: dir, Getter: failGetter{t}})
	if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: f.report(t, reportSpec{})}, attest.Options{Now: tVerify}); err != nil {
		t.Fatal(err)
	}
}

type failGetter struct{ t *testing.T }

func (g failGetter) Get(context.Context, string) ([]byte, error) {
	g.t.Error("offline verifier used the network")
	return nil, errors.New("no network")
}

// TestVLEKNeedsItsOwnCRL: a lone crl.der is the VCEK chain's CRL; a VLEK-signed report needs
// crl-vlek.der (both CRLs carry the same ARK signature, so only the name tells them apart).
func TestVLEKNeedsItsOwnCRL(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "crl.der"), f.crl(t, t0, 365*24*time.Hour), 0o644); err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, Options{Roots: f.roots, CertsDir: dir})
	ev := &attest.Evidence{TEE: attest.SEVSNP, Report: f.report(t, reportSpec{signer: 1}), Certificates: f.table(t)}
	_, err := v.Verify(context.Background(), ev, attest.Options{Now: tVerify})
	wantErr(t, err, attest.ErrUnavailable, "certificates.crl")
	ev = &attest.Evidence{TEE: attest.SEVSNP, Report: f.report(t, reportSpec{}), Certificates: f.table(t)}
	if _, err := v.Verify(context.Background(), ev, attest.Options{Now: tVerify}); err != nil {
		t.Fatalf("vcek with crl.der: %v", err)
	}
}

func TestBackoffDoubles(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }))
	defer srv.Close()
	var slept []time.Duration
	g := &HTTPGetter{Client: srv.Client(), Attempts: 5, MaxBackoff: 50 * time.Second, Sleep: func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	}}
	_, err := g.Get(context.Background(), srv.URL+"/vcek/v1/Milan/crl")
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusTooManyRequests {
		t.Fatalf("err %v", err)
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 50 * time.Second}
	if len(slept) != len(want) {
		t.Fatalf("slept %v, want %v", slept, want)
	}
	for i := range want {
		if slept[i] != want[i] {
			t.Fatalf("slept %v, want %v", slept, want)
		}
	}
}

// slowKDS blocks every request until released and counts them.
type slowKDS struct {
	mu      sync.Mutex
	n       int
	release chan struct{}
	files   map[string][]byte
}

func (k *slowKDS) Get(ctx context.Context, url string) ([]byte, error) {
	k.mu.Lock()
	k.n++
	k.mu.Unlock()
	<-k.release
	if b, ok := k.files[url]; ok {
		return b, nil
	}
	return nil, &StatusError{URL: url, Code: http.StatusNotFound}
}

// TestConcurrentColdVerificationsShareFetches: many verifications of a new chip at once make one
// VCEK request and one CRL request, not one each (late starters find both in memory).
func TestConcurrentColdVerificationsShareFetches(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	raw := f.report(t, reportSpec{})
	r, err := parseReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	kds := &slowKDS{release: make(chan struct{}), files: map[string][]byte{
		vcekURL(DefaultKDSURL, Milan, r.pb.ChipId, f.tcb): f.signer.Vcek.Raw,
		crlURL(DefaultKDSURL, Milan, SignerVCEK):          f.crl(t, t0, 365*24*time.Hour),
	}}
	v := mustNew(t, Options{Roots: f.roots, Getter: kds})
	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: raw}, attest.Options{Now: tVerify})
			errs <- err
		}()
	}
	// Let the goroutines pile up on the first request, then release them.
	for {
		kds.mu.Lock()
		started := kds.n
		kds.mu.Unlock()
		waiting := v.kds.InFlight()
		if started >= 1 && waiting >= 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(kds.release)
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if kds.n != 2 {
		t.Errorf("%d KDS requests for %d concurrent verifications", kds.n, n)
	}
}

// countingKDS answers like AMD's KDS and counts every request it receives.
type countingKDS struct {
	mu    sync.Mutex
	n     int
	files map[string][]byte
}

func (k *countingKDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.n++
	b, ok := k.files[r.URL.RequestURI()]
	k.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write(b)
}

func (k *countingKDS) requests() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n
}

// Issue 14 item 8: unauthenticated reports must not each cost a KDS request. A flood of forged
// reports naming one unknown chip costs one request (negative cache, single flight); a flood
// naming a fresh chip each time costs at most the burst of the global budget. The real chip
// still verifies afterwards once the budget refills.
func TestForgedReportFloodIsBounded(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	good := f.report(t, reportSpec{})
	r, err := parseReport(good)
	if err != nil {
		t.Fatal(err)
	}
	kds := &countingKDS{files: map[string][]byte{
		vcekURL("", Milan, r.pb.ChipId, f.tcb): f.signer.Vcek.Raw,
		crlURL("", Milan, SignerVCEK):          f.crl(t, t0, 365*24*time.Hour),
	}}
	srv := httptest.NewServer(kds)
	defer srv.Close()
	getter := &HTTPGetter{Client: srv.Client(), Attempts: 1}
	const burst, flood = 4, 300

	t.Run("one unknown chip", func(t *testing.T) {
		before := kds.requests()
		v := mustNew(t, Options{Roots: f.roots, Getter: getter, KDSURL: srv.URL, KDSBurst: burst, KDSRate: 1e-9})
		chip := hwidOf(Milan, 0x90)
		forged := f.report(t, reportSpec{chipID: &chip})
		var wg sync.WaitGroup
		for i := 0; i < flood; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: forged}, attest.Options{Now: tVerify})
				if !errors.Is(err, attest.ErrNotAuthentic) {
					t.Errorf("forged report: %v, want not authentic", err)
				}
			}()
		}
		wg.Wait()
		if n := kds.requests() - before; n != 1 {
			t.Fatalf("%d forged reports for one chip made %d KDS requests, want 1", flood, n)
		}
	})

	t.Run("a fresh chip each time", func(t *testing.T) {
		before := kds.requests()
		v := mustNew(t, Options{Roots: f.roots, Getter: getter, KDSURL: srv.URL, KDSBurst: burst, KDSRate: 1e-9})
		var unavailable int
		for i := 0; i < flood; i++ {
			var chip [64]byte
			chip[0], chip[1], chip[2] = 0xf0, byte(i), byte(i>>8)
			_, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: f.report(t, reportSpec{chipID: &chip})}, attest.Options{Now: tVerify})
			switch {
			case errors.Is(err, attest.ErrUnavailable):
				unavailable++
			case !errors.Is(err, attest.ErrNotAuthentic):
				t.Fatalf("forged report %d: %v", i, err)
			}
		}
		if n := kds.requests() - before; n > burst {
			t.Fatalf("%d forged reports for fresh chips made %d KDS requests, want at most %d", flood, n, burst)
		}
		if unavailable < flood-burst {
			t.Fatalf("only %d of %d verifications past the budget were refused as unavailable", unavailable, flood)
		}
	})

	t.Run("the real chip after the budget refills", func(t *testing.T) {
		v := mustNew(t, Options{Roots: f.roots, Getter: getter, KDSURL: srv.URL, KDSBurst: burst})
		if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: good}, attest.Options{Now: tVerify}); err != nil {
			t.Fatal(err)
		}
	})
}

// A failure is remembered only for KDSNegativeTTL: after it the KDS is asked again.
func TestKDSNegativeCacheExpires(t *testing.T) {
	f := newFixture(t, Milan, fixtureOpts{})
	kds := &countingKDS{files: map[string][]byte{}}
	srv := httptest.NewServer(kds)
	defer srv.Close()
	v := mustNew(t, Options{Roots: f.roots, Getter: &HTTPGetter{Client: srv.Client(), Attempts: 1}, KDSURL: srv.URL, KDSNegativeTTL: time.Minute})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v.wall = func() time.Time { return now }
	raw := f.report(t, reportSpec{})
	for range 3 {
		v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: raw}, attest.Options{Now: tVerify})
	}
	if n := kds.requests(); n != 1 {
		t.Fatalf("%d requests within the negative TTL, want 1", n)
	}
	now = now.Add(10*time.Minute + time.Second) // not found: remembered ten times the TTL
	v.Verify(context.Background(), &attest.Evidence{TEE: attest.SEVSNP, Report: raw}, attest.Options{Now: tVerify})
	if n := kds.requests(); n != 2 {
		t.Fatalf("%d requests after the negative TTL, want 2", n)
	}
}
