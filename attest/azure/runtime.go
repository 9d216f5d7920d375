package azure

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/medicus-cloud/trust/attest"
)

// AKKeyID is the JWK key ID of the vTPM attestation key in the HCL runtime data.
const AKKeyID = "HCLAkPub"

// RuntimeData is the part of the HCL runtime data JSON this package uses.
type RuntimeData struct {
	Keys []JWK `json:"keys"`
	// VMConfiguration is Azure's VM configuration (secure boot, TPM, console, vmUniqueId).
	VMConfiguration json.RawMessage `json:"vm-configuration,omitempty"`
	// UserData is the hex the guest wrote to NV index 0x01400002 before the report was made.
	UserData string `json:"user-data,omitempty"`
}

// JWK is an RSA JSON Web Key as the paravisor writes it.
type JWK struct {
	KeyID  string   `json:"kid"`
	KeyOps []string `json:"key_ops,omitempty"`
	Kty    string   `json:"kty"`
	N      string   `json:"n"`
	E      string   `json:"e"`
}

// ParseRuntimeData parses the runtime data JSON.
func ParseRuntimeData(b []byte) (*RuntimeData, error) {
	var rd RuntimeData
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&rd); err != nil {
		return nil, attest.Malformed("runtime_data", "not the HCL runtime data JSON: %v", err)
	}
	return &rd, nil
}

// AK returns the vTPM attestation key: the RSA key with kid HCLAkPub.
func (rd *RuntimeData) AK() (*rsa.PublicKey, error) {
	var found *JWK
	for i := range rd.Keys {
		if rd.Keys[i].KeyID == AKKeyID {
			if found != nil {
				return nil, attest.Malformed("runtime_data.keys", "two keys with kid %q", AKKeyID)
			}
			found = &rd.Keys[i]
		}
	}
	if found == nil {
		return nil, attest.NotAuthentic("runtime_data.keys", fmt.Errorf("no key with kid %q: the vTPM attestation key is not in the runtime data", AKKeyID))
	}
	k, err := found.rsa()
	if err != nil {
		return nil, attest.Malformed("runtime_data.keys."+AKKeyID, "%v", err)
	}
	return k, nil
}

func (j *JWK) rsa() (*rsa.PublicKey, error) {
	if j.Kty != "RSA" {
		return nil, fmt.Errorf("kty %q, want RSA", j.Kty)
	}
	n, err := b64url(j.N)
	if err != nil {
		return nil, fmt.Errorf("n: %v", err)
	}
	e, err := b64url(j.E)
	if err != nil {
		return nil, fmt.Errorf("e: %v", err)
	}
	if len(n) < 2048/8 || len(n) > 4096/8 || n[0] == 0 {
		return nil, fmt.Errorf("modulus of %d bytes, want a 2048- to 4096-bit key", len(n))
	}
	if len(e) == 0 || len(e) > 4 {
		return nil, errors.New("exponent out of range")
	}
	ev := new(big.Int).SetBytes(e)
	if ev.Int64() < 3 || ev.Bit(0) == 0 {
		return nil, errors.New("exponent out of range")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(ev.Int64())}, nil
}

// b64url decodes base64url with or without padding.
func b64url(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
