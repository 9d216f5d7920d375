package snp

import (
	"bytes"
	"context"
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"

	"github.com/medicus-cloud/trust/attest"
)

// FuzzVerify throws arbitrary reports and certificate tables at the verifier, seeded with valid
// fixture reports of every version and signer and the real Milan report. Nothing may panic, every
// failure must be an *attest.Error, and nothing may verify but a seed's signed content.
func FuzzVerify(f *testing.F) {
	milan := newFixture(f, Milan, fixtureOpts{})
	turin := newFixture(f, Turin, fixtureOpts{})
	var seeds [][]byte
	for _, s := range []reportSpec{{version: 2}, {version: 3}, {version: 5}, {signer: abi.VlekReportSigner}, {mask: true}} {
		seeds = append(seeds, milan.report(f, s))
	}
	seeds = append(seeds, turin.report(f, reportSpec{}))
	real := readTestdata(f, "milan-v2-report.bin")
	seeds = append(seeds, real)
	for i, s := range seeds {
		f.Add(s, milan.table(f), i%2 == 0)
	}
	f.Add(real, vcekOnlyTable(readTestdata(f, "milan-vcek.der")), false)
	f.Add(real, []byte{}, true)

	roots := map[string]*Roots{Milan: milan.roots[Milan], Turin: turin.roots[Turin]}
	amd, err := AMDRoots()
	if err != nil {
		f.Fatal(err)
	}
	vFake := mustNew(f, Options{Roots: roots, Revocation: InsecureRevocationSkip})
	vAMD := mustNew(f, Options{Roots: amd, Revocation: InsecureRevocationSkip})
	turinTable := turin.table(f)
	realVCEK := readTestdata(f, "milan-vcek.der")
	f.Fuzz(func(t *testing.T, report, table []byte, useTurin bool) {
		// The split of a file must agree with the parts.
		if rep, tab, err := SplitFile(append(bytes.Clone(report), table...)); err == nil && len(rep) != ReportSize {
			t.Fatalf("SplitFile returned a %d-byte report", len(rep))
		} else if err != nil && !errors.Is(err, attest.ErrMalformed) {
			t.Fatalf("SplitFile: %v", err)
		} else {
			_ = tab
		}
		ev := &attest.Evidence{TEE: attest.SEVSNP, Report: report, Certificates: table}
		if useTurin && len(table) == 0 {
			ev.Certificates = turinTable
		}
		for _, v := range []*Verifier{vFake, vAMD} {
			ev.Collateral = map[string][]byte{"vcek.der": realVCEK}
			c, err := v.Verify(context.Background(), ev, attest.Options{Now: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)})
			if err != nil {
				var ae *attest.Error
				if !errors.As(err, &ae) || ae.Field == "" {
					t.Fatalf("unclassified error %v", err)
				}
				continue
			}
			if c == nil {
				t.Fatal("nil claims without an error")
			}
			matched := false
			for _, s := range seeds {
				// Signatures are randomized, so compare what was signed.
				if bytes.Equal(report[:signedLen], s[:signedLen]) {
					matched = true
				}
			}
			if !matched {
				t.Fatalf("a report that is no seed verified: %x", report)
			}
		}
	})
}

// FuzzDiskStoreKey: a collateral key names a CRL file directly under the cache's crl/, or is
// refused.
func FuzzDiskStoreKey(f *testing.F) {
	f.Add("sev-snp/Milan/crl-vcek")
	f.Add("sev-snp/Genoa/crl-vlek")
	f.Add("sev-snp/../crl-vcek")
	f.Fuzz(func(t *testing.T, key string) {
		rel, err := DiskStore{}.rel(key)
		if err != nil {
			return
		}
		if path.Dir(rel) != "crl" || strings.Contains(path.Base(rel), "..") || strings.ContainsAny(rel, `\`) {
			t.Fatalf("key %q names %q", key, rel)
		}
	})
}
