package intel

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"sync"
)

// intelRootPEM is the Intel SGX Root CA certificate, as published at
// https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.pem
// (SHA-256 fingerprint 44:A0:19:6B:2B:99:F8:89:B8:E1:49:E9:5B:80:7A:35:0E:74:24:96:43:99:E8:85:A7:CB:B8:CC:FA:B6:74:D3).
// It roots every PCK chain and every collateral signing chain.
//
//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

var intelRoot = sync.OnceValue(func() *x509.Certificate {
	b, _ := pem.Decode(intelRootPEM)
	if b == nil {
		panic("intel: embedded root is not PEM") // build-time invariant
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		panic("intel: embedded root does not parse: " + err.Error())
	}
	return c
})

// IntelRoot returns the embedded Intel SGX Root CA certificate.
func IntelRoot() *x509.Certificate { return intelRoot() }
