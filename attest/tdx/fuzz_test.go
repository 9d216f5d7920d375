package tdx_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/attest/tdx/tdxtest"
)

// FuzzParseQuote exercises the parser alone (no signature checks, so it runs fast), seeded like
// FuzzVerify. A quote that parses must re-encode its body to the bytes it was parsed from.
func FuzzParseQuote(f *testing.F) {
	for _, q := range seeds(f) {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		p, err := tdx.ParseQuote(q)
		if err != nil {
			if !errors.Is(err, attest.ErrMalformed) {
				t.Fatalf("parse error of unknown kind: %v", err)
			}
			return
		}
		body := p.Body.Bytes()
		if !bytes.HasSuffix(p.Signed, body) || len(p.Signature) != 64 || len(p.AttestationKey) != 64 || len(p.QEReport) != 384 {
			t.Fatalf("inconsistent parse of %d bytes", len(q))
		}
	})
}

func seeds(f *testing.F) [][]byte {
	fix := fx(f)
	out := [][]byte{realQuote(f)}
	for _, mod := range []func(*tdxtest.QuoteSpec){
		nil,
		func(s *tdxtest.QuoteSpec) { s.Version = 5 },
		func(s *tdxtest.QuoteSpec) { s.Version, s.TD15 = 5, true },
	} {
		s := fix.DefaultSpec()
		if mod != nil {
			mod(&s)
		}
		out = append(out, fix.Quote(s))
	}
	return out
}

// FuzzVerify feeds arbitrary quotes through parsing and verification, seeded with the real
// production quote and quotes signed under the test PKI (v4, v5 TD 1.0, v5 TD 1.5). Whatever the
// input, the result is claims or an *attest.Error of a known kind, never a panic.
func FuzzVerify(f *testing.F) {
	fix := fx(f)
	for _, q := range seeds(f) {
		f.Add(q)
	}
	v, err := tdx.New(tdx.Options{Root: fix.PKI.Root})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		if _, err := tdx.ParseQuote(q); err != nil && !errors.Is(err, attest.ErrMalformed) {
			t.Fatalf("parse error of unknown kind: %v", err)
		}
		c, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TDX, Report: q}, attest.Options{Now: fix.Now})
		if err != nil {
			var ae *attest.Error
			if !errors.As(err, &ae) || ae.Field == "" {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		if len(c.Measurement) != 48 || len(c.ReportData) != 64 {
			t.Fatalf("verified claims with wrong sizes: %+v", c)
		}
	})
}
