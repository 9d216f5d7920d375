package sgx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

func oeWrap(typ uint32, q []byte) []byte {
	h := make([]byte, OEReportHeaderSize)
	binary.LittleEndian.PutUint32(h[0:], 1)
	binary.LittleEndian.PutUint32(h[4:], typ)
	binary.LittleEndian.PutUint64(h[8:], uint64(len(q)))
	return append(h, q...)
}

func TestEvidenceFromFile(t *testing.T) {
	q := readFixture(t, "quote_v4.bin")
	tdxQuote := readFixture(t, "tdx_prod_quote_SPR_E4.dat")
	tests := []struct {
		name  string
		in    []byte
		field string // empty: accepted as q
	}{
		{"raw quote", q, ""},
		{"ego remote report", oeWrap(2, q), ""},
		{"local report", oeWrap(1, q), "oe_report.header.report_type"},
		{"wrong size", oeWrap(2, q)[:len(q)], "oe_report.header.report_size"},
		{"tdx quote", tdxQuote, "quote.header.tee_type"},
		{"wrapped tdx quote", oeWrap(2, tdxQuote), "quote.header.tee_type"},
		{"empty", nil, "quote.header"},
		{"text", []byte("not a quote at all, just some words here and there and more words to pass 48 bytes"), "quote.header.version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := EvidenceFromFile(tt.in)
			if tt.field == "" {
				if err != nil || ev.TEE != attest.SGX || !bytes.Equal(ev.Report, q) {
					t.Fatalf("got %v, %v", ev, err)
				}
				return
			}
			var ae *attest.Error
			if !errors.As(err, &ae) || ae.Kind != attest.ErrMalformed || ae.Field != tt.field {
				t.Fatalf("error %v, want malformed %s", err, tt.field)
			}
		})
	}
}

func FuzzEvidenceFromFile(f *testing.F) {
	fuzzSeeds(f)
	f.Add(oeWrap(2, readFixture(f, "quote_v3.bin")))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := EvidenceFromFile(b)
		if err != nil {
			return
		}
		if _, err := ParseQuote(ev.Report); err != nil {
			t.Fatalf("evidence that does not parse: %v", err)
		}
	})
}
