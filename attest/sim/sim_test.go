package sim

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

func sample() []byte {
	r := &Report{Flags: FlagSMT, SVN: 3}
	r.Measurement[0] = 0xab
	r.ReportData[63] = 0x01
	return r.Sign(InsecureKey())
}

func TestVerify(t *testing.T) {
	v := NewInsecureVerifier()
	good := sample()
	c, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.InsecureSimulated, Report: good}, attest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Measurement[0] != 0xab || c.PlatformSMTEnabled != attest.TriTrue || c.Debug || c.TCB["guest_svn"] != 3 || c.ReportData[63] != 1 {
		t.Fatalf("claims %+v", c)
	}
	_, otherKey, _ := ed25519.GenerateKey(nil)
	forged := (&Report{}).Sign(otherKey)
	flipped := append([]byte(nil), good...)
	flipped[20] ^= 1
	tests := []struct {
		name   string
		report []byte
		want   error
	}{
		{"other key", forged, attest.ErrNotAuthentic},
		{"flipped measurement", flipped, attest.ErrNotAuthentic},
		{"truncated", good[:100], attest.ErrMalformed},
		{"oversized", append(append([]byte(nil), good...), 0), attest.ErrMalformed},
		{"empty", nil, attest.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.InsecureSimulated, Report: tc.report}, attest.Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(sample())
	f.Add([]byte(magic))
	v := NewInsecureVerifier()
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.InsecureSimulated, Report: b}, attest.Options{})
		if err == nil && len(c.ReportData) != attest.ReportDataSize {
			t.Fatal("accepted a report without report data")
		}
	})
}
