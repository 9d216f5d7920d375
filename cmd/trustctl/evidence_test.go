package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sgx"
	"github.com/medicus-cloud/trust/attest/sgx/sgxtest"
)

// Issue 14 item 9: authentic evidence of a debug guest is reported as verified, with debug true
// and a warning, in text and JSON. The debug enclave's quote is the committed test vector under
// the sgxtest root.
func TestEvidenceVerifyDebugGuest(t *testing.T) {
	rootPEM, err := os.ReadFile("../../attest/sgx/testdata/root.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(rootPEM)
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	q, err := os.ReadFile("../../attest/sgx/testdata/quote_debug.bin")
	if err != nil {
		t.Fatal(err)
	}
	v, err := sgx.New(sgx.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.SGX, Report: q}, attest.Options{Now: sgxtest.Now})
	if err != nil {
		t.Fatalf("debug enclave not verified: %v", err)
	}
	res := verified(&evidenceResult{TEE: "sgx"}, c)

	var text bytes.Buffer
	if err := printEvidence(&text, "text", res); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text.String(), "VERIFIED sgx evidence\n  WARNING: debug guest") || !strings.Contains(text.String(), "debug true") {
		t.Fatalf("text output:\n%s", text.String())
	}
	var js bytes.Buffer
	if err := printEvidence(&js, "json", res); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Verified bool     `json:"verified"`
		Warnings []string `json:"warnings"`
		Claims   struct {
			Debug bool `json:"debug"`
		} `json:"claims"`
	}
	if err := json.Unmarshal(js.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if !out.Verified || !out.Claims.Debug || len(out.Warnings) != 1 {
		t.Fatalf("json output: %s", js.String())
	}
}
