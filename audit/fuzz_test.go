package audit_test

import (
	"bytes"
	"testing"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/audittest"
)

func FuzzParseRecord(f *testing.F) {
	for i := range 3 {
		b, _ := audit.Marshal(audittest.Record(i))
		f.Add(b)
	}
	f.Add([]byte(`{"time":"2026-11-24T09:30:00Z","event":"attest","verdict":"allow","x":1}`))
	f.Add([]byte(`{"time":"2026-11-24T09:30:00+01:00","request_id":"","event":"attest","verdict":"allow"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := audit.ParseRecord(b)
		if err != nil {
			return
		}
		// Accepted bytes are canonical: they are exactly what Marshal writes.
		c, err := audit.Marshal(r)
		if err != nil || !bytes.Equal(c, b) {
			t.Fatalf("accepted %q, re-encodes to %q (%v)", b, c, err)
		}
	})
}
