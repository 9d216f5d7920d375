// Package azuretest makes Azure CVM evidence parts under test roots: HCL reports around SNP
// reports signed by a fake AMD hierarchy (go-sev-guest's testing package) or TD reports, and
// runtime data naming a given attestation key. Quotes come from a real TPM simulator.
package azuretest

import (
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"time"

	"github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/medicus-cloud/trust/attest/snp"
)

// Now is inside every validity window the fixtures make.
var Now = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// SNPFixture is a fake AMD Milan hierarchy with one chip's VCEK.
type SNPFixture struct {
	Signer *sevtest.AmdSigner
	Roots  map[string]*snp.Roots
	HWID   [64]byte
}

// Milan TCB the fixture's VCEK is issued for: bootloader 3, TEE 0, SNP 8, microcode 115.
var milanTCB = []byte{3, 0, 0, 0, 0, 0, 8, 115}

// AMD's VCEK extensions (AMD KDS specification, arc 1.3.6.1.4.1.3704.1).
func vcekExtensions(hwid []byte) []pkix.Extension {
	oid := func(v ...int) asn1.ObjectIdentifier {
		return append(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1}, v...)
	}
	i := func(v uint8) []byte { b, _ := asn1.Marshal(int(v)); return b }
	name, _ := asn1.MarshalWithParams("Milan-B1", "ia5")
	return []pkix.Extension{
		{Id: oid(1), Value: i(1)},
		{Id: oid(2), Value: name},
		{Id: oid(3, 1), Value: i(milanTCB[0])},
		{Id: oid(3, 2), Value: i(milanTCB[1])},
		{Id: oid(3, 3), Value: i(milanTCB[6])},
		{Id: oid(3, 4), Value: i(0)},
		{Id: oid(3, 5), Value: i(0)},
		{Id: oid(3, 6), Value: i(0)},
		{Id: oid(3, 7), Value: i(0)},
		{Id: oid(3, 8), Value: i(milanTCB[7])},
		{Id: oid(4), Value: hwid},
	}
}

// NewSNPFixture makes the hierarchy.
func NewSNPFixture() (*SNPFixture, error) {
	f := &SNPFixture{}
	for i := range f.HWID {
		f.HWID[i] = 0x40 + byte(i)
	}
	t0 := Now.AddDate(0, -6, 0)
	b := &sevtest.AmdSignerBuilder{
		Keys:             sevtest.DefaultAmdKeys(),
		ProductName:      "Milan-B1",
		ArkCreationTime:  t0,
		AskCreationTime:  t0,
		AsvkCreationTime: t0,
		VcekCreationTime: t0,
		VlekCreationTime: t0,
		HWID:             f.HWID,
		VcekCustom:       sevtest.CertOverride{Extensions: vcekExtensions(f.HWID[:])},
	}
	s, err := b.TestOnlyCertChain()
	if err != nil {
		return nil, err
	}
	f.Signer = s
	f.Roots = map[string]*snp.Roots{snp.Milan: {Product: snp.Milan, ARK: s.Ark, ASK: s.Ask}}
	return f, nil
}

// VCEK is the chip's VCEK certificate (DER).
func (f *SNPFixture) VCEK() []byte { return f.Signer.Vcek.Raw }

// Report makes a version 3 Milan report at vmpl with reportData, signed by the VCEK.
func (f *SNPFixture) Report(reportData [64]byte, vmpl uint32) ([]byte, error) {
	raw := make([]byte, abi.ReportSize)
	le := binary.LittleEndian
	le.PutUint32(raw[0x00:], 3)
	le.PutUint32(raw[0x04:], 1)
	le.PutUint64(raw[0x08:], 0x30000)
	le.PutUint32(raw[0x30:], vmpl)
	le.PutUint32(raw[0x34:], abi.SignEcdsaP384Sha384)
	tcb := le.Uint64(milanTCB)
	le.PutUint64(raw[0x38:], tcb)
	le.PutUint32(raw[0x48:], abi.ComposeSignerInfo(abi.SignerInfo{SigningKey: abi.VcekReportSigner}))
	copy(raw[0x50:0x90], reportData[:])
	for i := 0x90; i < 0xC0; i++ {
		raw[i] = byte(i) // the paravisor's launch measurement
	}
	le.PutUint64(raw[0x180:], tcb)
	raw[0x188], raw[0x189], raw[0x18A] = 0x19, 0x01, 0x01
	copy(raw[0x1A0:0x1E0], f.HWID[:])
	le.PutUint64(raw[0x1E0:], tcb)
	le.PutUint64(raw[0x1F0:], tcb)
	r, s, err := f.Signer.Sign(raw[:0x2A0])
	if err != nil {
		return nil, err
	}
	if err := abi.SetSignature(r, s, raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// RuntimeData is runtime data JSON as the paravisor writes it, naming ak as HCLAkPub (nil: no
// AK) and carrying userData.
func RuntimeData(ak *rsa.PublicKey, userData []byte) []byte {
	type jwk struct {
		Kid    string   `json:"kid"`
		KeyOps []string `json:"key_ops"`
		Kty    string   `json:"kty"`
		E      string   `json:"e"`
		N      string   `json:"n"`
	}
	enc := base64.RawURLEncoding
	keys := []jwk{}
	if ak != nil {
		keys = append(keys, jwk{"HCLAkPub", []string{"sign"}, "RSA", enc.EncodeToString(big.NewInt(int64(ak.E)).Bytes()), enc.EncodeToString(ak.N.Bytes())})
	}
	b, _ := json.Marshal(map[string]any{
		"keys":             keys,
		"vm-configuration": map[string]any{"secure-boot": true, "tpm-enabled": true, "vmUniqueId": "00000000-0000-0000-0000-000000000000"},
		"user-data":        hex.EncodeToString(userData),
	})
	return b
}

// The HCL report's report types.
const (
	ReportTypeSNP = 2
	ReportTypeTDX = 4
)

// HCLReport lays out an HCL report (hash type SHA-256) around hw and runtime, padded to the
// 2600 bytes of Azure's NV index when it fits.
func HCLReport(reportType uint32, hw, runtime []byte) []byte {
	le := binary.LittleEndian
	b := make([]byte, 32+1184+20, 2600)
	copy(b, "HCLA")
	le.PutUint32(b[4:], 2)
	le.PutUint32(b[12:], 2)
	copy(b[32:32+1184], hw)
	d := b[32+1184:]
	le.PutUint32(d[0:], uint32(20+len(runtime)))
	le.PutUint32(d[4:], 1)
	le.PutUint32(d[8:], reportType)
	le.PutUint32(d[12:], 1)
	le.PutUint32(d[16:], uint32(len(runtime)))
	b = append(b, runtime...)
	if len(b) < 2600 {
		b = append(b, make([]byte, 2600-len(b))...)
	}
	le.PutUint32(b[8:], uint32(len(b)))
	return b
}

// TDReport is a TDREPORT_STRUCT (1024 bytes) with reportData and mrtd where the TDX module puts
// them; the MAC is not computed (only the platform could check it).
func TDReport(reportData [64]byte, mrtd [48]byte) []byte {
	b := make([]byte, 1024)
	b[0] = 0x81
	copy(b[128:192], reportData[:])
	copy(b[512+16:512+64], mrtd[:])
	return b
}
