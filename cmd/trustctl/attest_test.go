package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/release"
	"github.com/medicus-cloud/trust/sdk"
)

var update = flag.Bool("update", false, "rewrite golden files")

// `trustctl attest --dev --format json`: both token forms beside the verdict and grants, and a
// denial with its details.
func TestAttestJSONGolden(t *testing.T) {
	att := &sdk.Attestation{RequestID: "r-1", Policy: "hello", PolicyDigest: []byte{0xab, 0xcd},
		Grants: []release.Grant{{Kind: release.GrantSecret, Name: "hello/api-token"}, {Kind: release.GrantDataKey, Name: "hello/records"}},
		Claims: &attest.Claims{TEE: attest.InsecureSimulated, Measurement: attest.Hex{1, 2, 3}},
		Token:  []byte{0xd2, 0x84, 0x43, 0xfb, 0xff}, JWT: "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", ExpiresAt: time.Unix(1_800_000_000, 0)}
	for _, tc := range []struct {
		name string
		att  *sdk.Attestation
		err  error
	}{
		{"attest_json_ok.golden", att, nil},
		{"attest_json_denied.golden", nil, &sdk.DeniedError{Claim: "measurement", Seen: "0102", Expected: "one of [ffff]", Policy: "hello"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := printAttestationJSON(&out, tc.att, tc.err)
			if (err != nil) != (tc.err != nil) {
				t.Fatalf("err %v", err)
			}
			path := filepath.Join("testdata", tc.name)
			if *update {
				os.WriteFile(path, out.Bytes(), 0o644)
			}
			want, _ := os.ReadFile(path)
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("got\n%s\nwant\n%s", out.Bytes(), want)
			}
		})
	}
}
