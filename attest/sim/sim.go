// Package sim is the simulated TEE for development and tests.
//
// INSECURE: simulated reports are signed with a key derived from a published string, so anyone
// can produce a report with any measurement. trustd accepts them only when started with --dev,
// and the TEE type says so everywhere it appears ("insecure-simulated").
//
// Report layout (all integers big-endian), 228 bytes:
//
//	magic "MTSIM\x00\x00\x01" | flags uint32 | svn uint32 | measurement [48] | host_data [32] |
//	report_data [64] | reserved [4] | ed25519 signature over everything before it [64]
package sim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"github.com/medicus-cloud/trust/attest"
)

// Sizes of the report and its fields.
const (
	ReportSize      = 228
	MeasurementSize = 48
	HostDataSize    = 32
	sigOffset       = ReportSize - ed25519.SignatureSize
)

const magic = "MTSIM\x00\x00\x01"

// Flags in a report.
const (
	FlagDebug uint32 = 1 << iota
	FlagMigration
	FlagSMT
)

// InsecureSeed is the published seed of the simulator's signing key.
const InsecureSeed = "medicus-trust insecure simulator key: never trust this"

// InsecureKey returns the simulator's signing key. It is public knowledge.
func InsecureKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(InsecureSeed))
	return ed25519.NewKeyFromSeed(seed[:])
}

// Report is a parsed simulated report.
type Report struct {
	Flags       uint32
	SVN         uint32
	Measurement [MeasurementSize]byte
	HostData    [HostDataSize]byte
	ReportData  [attest.ReportDataSize]byte
}

// Sign encodes and signs r with key.
func (r *Report) Sign(key ed25519.PrivateKey) []byte {
	b := make([]byte, 0, ReportSize)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, r.Flags)
	b = binary.BigEndian.AppendUint32(b, r.SVN)
	b = append(b, r.Measurement[:]...)
	b = append(b, r.HostData[:]...)
	b = append(b, r.ReportData[:]...)
	b = append(b, 0, 0, 0, 0)
	return append(b, ed25519.Sign(key, b)...)
}

// Parse checks the layout (not the signature).
func Parse(b []byte) (*Report, error) {
	if len(b) != ReportSize {
		return nil, attest.Malformed("report", "simulated report is %d bytes, want %d", len(b), ReportSize)
	}
	if !bytes.Equal(b[:8], []byte(magic)) {
		return nil, attest.Malformed("report.magic", "not a simulated report")
	}
	if !bytes.Equal(b[sigOffset-4:sigOffset], []byte{0, 0, 0, 0}) {
		return nil, attest.Malformed("report.reserved", "reserved bytes are not zero")
	}
	r := &Report{Flags: binary.BigEndian.Uint32(b[8:]), SVN: binary.BigEndian.Uint32(b[12:])}
	if r.Flags&^(FlagDebug|FlagMigration|FlagSMT) != 0 {
		return nil, attest.Malformed("report.flags", "unknown flag bits %#x", r.Flags)
	}
	off := 16
	off += copy(r.Measurement[:], b[off:])
	off += copy(r.HostData[:], b[off:])
	copy(r.ReportData[:], b[off:])
	return r, nil
}

// Verifier verifies simulated reports against one public key.
type Verifier struct {
	pub ed25519.PublicKey
}

// NewInsecureVerifier trusts the published simulator key. Use only in development.
func NewInsecureVerifier() *Verifier {
	return &Verifier{pub: InsecureKey().Public().(ed25519.PublicKey)}
}

// TEE implements attest.Verifier.
func (v *Verifier) TEE() attest.TEE { return attest.InsecureSimulated }

// Verify implements attest.Verifier.
func (v *Verifier) Verify(_ context.Context, ev *attest.Evidence, _ attest.Options) (*attest.Claims, error) {
	if ev == nil || ev.TEE != attest.InsecureSimulated {
		return nil, attest.Malformed("evidence.tee", "not simulated evidence")
	}
	r, err := Parse(ev.Report)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(v.pub, ev.Report[:sigOffset], ev.Report[sigOffset:]) {
		return nil, attest.NotAuthentic("report.signature", errors.New("signature does not verify under the simulator key"))
	}
	return &attest.Claims{
		TEE:                attest.InsecureSimulated,
		Measurement:        bytes.Clone(r.Measurement[:]),
		Config:             map[string]attest.Hex{ClaimHostData: bytes.Clone(r.HostData[:])},
		TCB:                map[string]uint64{ClaimGuestSVN: uint64(r.SVN)},
		Debug:              r.Flags&FlagDebug != 0,
		Migration:          r.Flags&FlagMigration != 0,
		PlatformSMTEnabled: attest.TristateOf(new(r.Flags&FlagSMT != 0)),
		ReportData:         bytes.Clone(r.ReportData[:]),
		Platform:           map[string]string{"product": "simulator"},
	}, nil
}
