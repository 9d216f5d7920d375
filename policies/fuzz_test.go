package policies

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

// seedFiles adds every example, test and lint file as a seed.
func seedFiles(f *testing.F, patterns ...string) {
	for _, pat := range patterns {
		m, _ := filepath.Glob(pat)
		for _, n := range m {
			b, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

func FuzzParse(f *testing.F) {
	seedFiles(f, "examples/*.yaml", "testdata/lint/*.yaml", "testdata/diff/new/*.yaml")
	f.Add([]byte("apiVersion: x\n---\nkind: y"))
	f.Add([]byte(snpPolicy))
	f.Add([]byte(tdxPolicy + "\n---\n" + sgxPolicy))
	claims := []*attest.Claims{goodSNP(), goodTDX(), goodSGX(), {TEE: attest.SEVSNP}, {}}
	f.Fuzz(func(t *testing.T, b []byte) {
		bundle, err := Parse(map[string][]byte{"f.yaml": b})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T without a position: %v", err, err)
			}
			return
		}
		for _, p := range bundle.Policies {
			for _, m := range p.Spec.Measurements {
				for _, tee := range p.Spec.TEE {
					claims = append(claims[:5], &attest.Claims{TEE: tee, Measurement: m})
				}
			}
		}
		for _, c := range claims {
			d, err := bundle.Evaluate(c)
			_, ed, eerr := bundle.Explain(c)
			if (d == nil) != (ed == nil) || (err == nil) != (eerr == nil) {
				t.Fatalf("Evaluate (%v, %v) and Explain (%v, %v) disagree", d, err, ed, eerr)
			}
		}
	})
}

func FuzzImportReferenceValues(f *testing.F) {
	seedFiles(f, "examples/*.refs.json", "testdata/lint/*.refs.json", "testdata/diff/new/*.refs.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		rv, err := ImportReferenceValues("f.refs.json", b)
		if err == nil && (len(rv.Measurements) == 0 || rv.Image == "") {
			t.Fatalf("accepted %+v", rv)
		}
	})
}

func FuzzManifest(f *testing.F) {
	m, _ := newManifest(3, map[string][]byte{"a.yaml": []byte("x"), "b.refs.json": nil})
	f.Add(m.canonical())
	f.Add([]byte(`{"apiVersion":"trust.medicus.cloud/v1","kind":"PolicyBundle","version":1,"files":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseManifest(b)
		if err == nil && !bytes.Equal(m.canonical(), b) {
			t.Fatal("accepted a non-canonical manifest")
		}
	})
}

func FuzzVerifySignature(f *testing.F) {
	keys := newTestKeys(f)
	tk := mustKeys(f, trustPEM(keys...))
	man := []byte("manifest\n")
	for _, k := range keys {
		sig, _, err := signManifest(rand.Reader, k.signer, man)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sig)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kid, err := verifySignature("f.cose", b, man, tk)
		if err == nil && kid != "" {
			// Only an unchanged signature by a trusted key may verify.
			if _, ok := tk[kid]; !ok {
				t.Fatalf("verified under unknown key %s", kid)
			}
		}
	})
}

func FuzzClaims(f *testing.F) {
	seedFiles(f, "examples/tests/*.json")
	bundle := realisticBundle(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseClaims("c.json", b)
		if err == nil {
			_, _ = bundle.Evaluate(c)
		}
	})
}
