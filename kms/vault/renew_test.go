package vault

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock drives the store's renewal timers by hand. Waits under a second (retry backoff)
// fire at once.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d < time.Second {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	return ch
}

// waitTimer waits until the store has armed a timer due after the clock's now, and returns when
// it would fire.
func (c *fakeClock) waitTimer(t *testing.T) time.Time {
	t.Helper()
	for i := 0; i < 2000; i++ {
		c.mu.Lock()
		var at time.Time
		for _, tm := range c.timers {
			if tm.at.After(c.now) {
				at = tm.at
			}
		}
		c.mu.Unlock()
		if !at.IsZero() {
			return at
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the store armed no renewal timer")
	return time.Time{}
}

// advanceTo moves the clock and fires every timer due by then.
func (c *fakeClock) advanceTo(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = at
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if !tm.at.After(at) {
			tm.ch <- at
		} else {
			kept = append(kept, tm)
		}
	}
	c.timers = kept
}

// waitRequests waits until the fake has seen n requests.
func (f *fakeVault) waitRequests(t *testing.T, n int) []fakeReq {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if r := f.requests(); len(r) >= n {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := f.requests()
	t.Fatalf("%d requests, waited for %d: %+v", len(r), n, r)
	return nil
}

// TestRenewalSchedule: a 60s AppRole token is renewed two thirds into its life; when Vault caps
// a renewal (max TTL reached) the store logs in again before the old token runs out.
func TestRenewalSchedule(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var (
		mu     sync.Mutex
		logins int
		lease  = 60 // what renew-self grants
	)
	f := &fakeVault{t: t}
	f.handle = func(r fakeReq) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasSuffix(r.uri, "/approle/login"):
			logins++
			return 200, fmt.Sprintf(`{"auth":{"client_token":"hvs.login-%d","lease_duration":60,"renewable":true}}`, logins)
		case strings.HasSuffix(r.uri, "/renew-self"):
			return 200, fmt.Sprintf(`{"auth":{"client_token":"x","lease_duration":%d,"renewable":true}}`, lease)
		}
		return 404, `{"errors":[]}`
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	sid := filepath.Join(t.TempDir(), "sid")
	os.WriteFile(sid, []byte("secret-id"), 0o600)
	s, err := New(context.Background(), Config{
		Address: srv.URL,
		Auth:    Auth{Method: AuthAppRole, AppRole: AppRoleAuth{RoleID: "role", SecretIDFile: sid}},
		Tenants: map[string]Mapping{"t": {}},
	}, Options{Now: clock.Now, After: clock.After})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := clock.Now()

	// Two thirds of 60s, less Vault's whole-second rounding.
	at := clock.waitTimer(t)
	if got := at.Sub(t0); got != 39*time.Second {
		t.Fatalf("first renewal at +%v, want +39s", got)
	}
	clock.advanceTo(at)
	reqs := f.waitRequests(t, 2)
	if !strings.HasSuffix(reqs[1].uri, "/renew-self") || reqs[1].header.Get("X-Vault-Token") != "hvs.login-1" {
		t.Fatalf("request 2: %s", reqs[1].uri)
	}

	// Renewed in full: the next renewal is 39s after this one. Vault now caps it at 20s.
	mu.Lock()
	lease = 20
	mu.Unlock()
	at2 := clock.waitTimer(t)
	if got := at2.Sub(at); got != 39*time.Second {
		t.Fatalf("second renewal %v after the first, want 39s", got)
	}
	clock.advanceTo(at2)
	reqs = f.waitRequests(t, 4)
	if !strings.HasSuffix(reqs[2].uri, "/renew-self") || !strings.HasSuffix(reqs[3].uri, "/approle/login") {
		t.Fatalf("requests 3 and 4: %s, %s", reqs[2].uri, reqs[3].uri)
	}
	// Releases now carry the new token.
	s.GetSecret(context.Background(), "t/x")
	reqs = f.requests()
	if tok := reqs[len(reqs)-1].header.Get("X-Vault-Token"); tok != "hvs.login-2" {
		t.Fatalf("release with token %q, want the new login's", tok)
	}
}
