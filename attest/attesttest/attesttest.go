// Package attesttest is a conformance suite for attest.Verifier implementations, as kms/kmstest
// is for key stores: every verifier of every scheme must pass it with evidence made under test
// roots (attest/snp/snptest, attest/tdx/tdxtest, attest/sgx/sgxtest, the simulator key).
//
// What it checks: authentic evidence verifies, with the verifier's TEE, exactly the report data
// it was made over and a measurement of the scheme's length; nil, empty, truncated and garbage
// evidence is refused with an *attest.Error that names a field (ErrMalformed for truncation);
// evidence labelled with another TEE is refused; one flipped bit in a signed byte or in a
// signature is ErrNotAuthentic; no input makes Verify panic; Verify is safe for concurrent use.
package attesttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

// Subject is one verifier with what the suite needs to make and break its evidence.
type Subject struct {
	Verifier attest.Verifier
	// Scheme, if set, is the verifier's scheme: the suite checks its TEE and measurement rule.
	Scheme *attest.Scheme
	// Evidence returns fresh authentic evidence whose report data is reportData.
	Evidence func(t testing.TB, reportData [attest.ReportDataSize]byte) *attest.Evidence
	// Options are the Verify options under which the evidence is authentic (a time inside the
	// test roots' validity).
	Options attest.Options
	// Signed are offsets into Report of bytes a signature covers; Signature are offsets of bytes
	// of a signature. Flipping one bit at any of them must give ErrNotAuthentic.
	Signed, Signature []int
	// MutateRuns is how many random one-byte mutations and truncations to try (for panics
	// only); 0 means 200.
	MutateRuns int
}

// Run runs the suite.
func Run(t *testing.T, s Subject) {
	t.Helper()
	if s.Verifier == nil || s.Evidence == nil {
		t.Fatal("attesttest: Subject needs Verifier and Evidence")
	}
	ctx := context.Background()
	verify := func(t *testing.T, ev *attest.Evidence) (c *attest.Claims, err error) {
		t.Helper()
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Verify panicked: %v", r)
			}
		}()
		return s.Verifier.Verify(ctx, ev, s.Options)
	}
	rd := func(b byte) (r [attest.ReportDataSize]byte) {
		for i := range r {
			r[i] = b + byte(i)
		}
		return r
	}

	t.Run("authentic", func(t *testing.T) {
		if s.Scheme != nil && s.Verifier.TEE() != s.Scheme.TEE {
			t.Fatalf("verifier TEE %s, scheme %s", s.Verifier.TEE(), s.Scheme.TEE)
		}
		for _, b := range []byte{0x00, 0x5a} {
			want := rd(b)
			c, err := verify(t, s.Evidence(t, want))
			if err != nil {
				t.Fatalf("authentic evidence: %v", err)
			}
			if c.TEE != s.Verifier.TEE() {
				t.Errorf("claims TEE %s, verifier %s", c.TEE, s.Verifier.TEE())
			}
			// The verifier reports the report data as it is; the service compares it with the
			// binding it expects, so a mismatch must surface here unaltered. A verifier whose
			// evidence carries the binding otherwise (attest.BindingChecker) says whether it
			// is this one, and that another is not.
			if _, ok := s.Verifier.(attest.BindingChecker); ok {
				if err := attest.CheckBinding(s.Verifier, c, want); err != nil {
					t.Errorf("binding: %v", err)
				}
				if err := attest.CheckBinding(s.Verifier, c, rd(b+1)); err == nil {
					t.Error("another binding accepted")
				}
			} else if !bytes.Equal(c.ReportData, want[:]) {
				t.Errorf("claims report data %x, evidence made over %x", c.ReportData, want)
			}
			if s.Scheme != nil {
				if err := s.Scheme.Measurement.Check(c.TEE, c.Measurement); err != nil {
					t.Errorf("measurement: %v", err)
				}
			}
		}
	})

	t.Run("nil and empty", func(t *testing.T) {
		for name, ev := range map[string]*attest.Evidence{
			"nil":          nil,
			"empty":        {},
			"no report":    {TEE: s.Verifier.TEE()},
			"empty report": {TEE: s.Verifier.TEE(), Report: []byte{}},
		} {
			if _, err := verify(t, ev); err == nil {
				t.Errorf("%s evidence verified", name)
			}
		}
	})

	good := s.Evidence(t, rd(1))
	clone := func() *attest.Evidence {
		ev := *good
		ev.Report = bytes.Clone(good.Report)
		ev.Certificates = bytes.Clone(good.Certificates)
		return &ev
	}

	t.Run("wrong TEE", func(t *testing.T) {
		for _, other := range []attest.TEE{attest.SEVSNP, attest.TDX, attest.SGX, attest.InsecureSimulated, "", "no-such-tee"} {
			if other == s.Verifier.TEE() {
				continue
			}
			ev := clone()
			ev.TEE = other
			if _, err := verify(t, ev); err == nil {
				t.Errorf("evidence labelled %q verified by the %s verifier", other, s.Verifier.TEE())
			}
		}
	})

	t.Run("truncated", func(t *testing.T) {
		n := len(good.Report)
		for _, l := range []int{0, 1, 16, n / 2, n - 1} {
			if l < 0 || l >= n {
				continue
			}
			ev := clone()
			ev.Report = ev.Report[:l]
			_, err := verify(t, ev)
			if !errors.Is(err, attest.ErrMalformed) {
				t.Errorf("report truncated to %d of %d bytes: %v, want ErrMalformed", l, n, err)
			}
			wantField(t, fmt.Sprintf("truncated to %d", l), err)
		}
	})

	t.Run("garbage", func(t *testing.T) {
		n := len(good.Report)
		r := rand.New(rand.NewPCG(1, 2))
		random := make([]byte, n)
		for i := range random {
			random[i] = byte(r.Uint32())
		}
		for name, b := range map[string][]byte{
			"zeros": make([]byte, n), "ones": bytes.Repeat([]byte{0xff}, n), "random": random,
			"text": []byte("this is not a report"), "oversized": make([]byte, 1<<20),
		} {
			ev := clone()
			ev.Report = b
			_, err := verify(t, ev)
			if err == nil {
				t.Errorf("%s report verified", name)
				continue
			}
			wantField(t, name, err)
		}
	})

	t.Run("tampered", func(t *testing.T) {
		if len(s.Signed) == 0 || len(s.Signature) == 0 {
			t.Fatal("attesttest: Subject needs Signed and Signature offsets")
		}
		for _, group := range []struct {
			name string
			offs []int
		}{{"signed byte", s.Signed}, {"signature byte", s.Signature}} {
			for _, off := range group.offs {
				if off < 0 || off >= len(good.Report) {
					t.Fatalf("offset %d outside the %d-byte report", off, len(good.Report))
				}
				ev := clone()
				ev.Report[off] ^= 0x01
				_, err := verify(t, ev)
				if !errors.Is(err, attest.ErrNotAuthentic) {
					t.Errorf("%s %d flipped: %v, want ErrNotAuthentic", group.name, off, err)
				}
			}
		}
	})

	t.Run("mutations never panic", func(t *testing.T) {
		runs := s.MutateRuns
		if runs == 0 {
			runs = 200
		}
		r := rand.New(rand.NewPCG(3, 4))
		for range runs {
			ev := clone()
			if len(ev.Report) == 0 {
				break
			}
			switch r.IntN(3) {
			case 0:
				ev.Report[r.IntN(len(ev.Report))] ^= byte(1 + r.IntN(255))
			case 1:
				ev.Report = ev.Report[:r.IntN(len(ev.Report))]
			default:
				ev.Report = append(ev.Report, make([]byte, 1+r.IntN(64))...)
			}
			verify(t, ev) // any result but a panic
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				if _, err := s.Verifier.Verify(ctx, clone(), s.Options); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent Verify: %v", err)
		}
	})
}

// wantField fails unless err is an *attest.Error naming a field.
func wantField(t *testing.T, what string, err error) {
	t.Helper()
	var ae *attest.Error
	if !errors.As(err, &ae) || ae.Field == "" {
		t.Errorf("%s: error %v is not an *attest.Error naming a field", what, err)
	}
}
