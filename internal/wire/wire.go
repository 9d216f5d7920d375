// Package wire converts between the gRPC messages of api/trustv1 and the Go types of attest,
// seal and release, in one place for the service and the SDK.
package wire

import (
	"crypto/ecdsa"
	"crypto/x509"
	"fmt"
	"maps"
	"strings"
	"time"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/release"
	"github.com/medicus-cloud/trust/seal"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The proto enum value of a TEE is named "TEE_" + its name in upper case with "-" as "_"
// (sev-snp is TEE_SEV_SNP), so that a new scheme needs no mapping here; attest/schemes tests
// that every scheme has its value. This package does not import the schemes: the SDK links it.

// TEE converts a wire TEE type.
func TEE(t pb.TEE) (attest.TEE, error) {
	name, ok := pb.TEE_name[int32(t)]
	if !ok || t == pb.TEE_TEE_UNSPECIFIED {
		return "", fmt.Errorf("unknown TEE type %v", t)
	}
	return attest.TEE(strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "TEE_")), "_", "-")), nil
}

// TEEToPB converts a TEE type to the wire; a TEE without an enum value is TEE_UNSPECIFIED.
func TEEToPB(t attest.TEE) pb.TEE {
	if t == "" {
		return pb.TEE_TEE_UNSPECIFIED
	}
	return pb.TEE(pb.TEE_value["TEE_"+strings.ReplaceAll(strings.ToUpper(string(t)), "-", "_")])
}

// Evidence converts wire evidence (which must not be nil).
func Evidence(e *pb.Evidence) (*attest.Evidence, error) {
	t, err := TEE(e.GetTee())
	if err != nil {
		return nil, err
	}
	return &attest.Evidence{TEE: t, Report: e.GetReport(), Certificates: e.GetCertificates(), Collateral: e.GetCollateral()}, nil
}

// EvidenceToPB converts evidence to the wire.
func EvidenceToPB(e *attest.Evidence) *pb.Evidence {
	return &pb.Evidence{Tee: TEEToPB(e.TEE), Report: e.Report, Certificates: e.Certificates, Collateral: e.Collateral}
}

// Suite returns the HPKE suite of a wire workload key.
func Suite(k *pb.WorkloadKey) seal.Suite {
	return seal.Suite{KEM: uint16(k.GetKem()), KDF: uint16(k.GetKdf()), AEAD: uint16(k.GetAead())}
}

// WorkloadKeyToPB converts a public key to the wire.
func WorkloadKeyToPB(k *seal.PublicKey) *pb.WorkloadKey {
	s := k.Suite()
	return &pb.WorkloadKey{Kem: uint32(s.KEM), Kdf: uint32(s.KDF), Aead: uint32(s.AEAD), PublicKey: k.Bytes()}
}

func hexMap(m map[string]attest.Hex) map[string][]byte {
	if m == nil {
		return nil
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func bytesMap(m map[string][]byte) map[string]attest.Hex {
	if m == nil {
		return nil
	}
	out := make(map[string]attest.Hex, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ClaimsToPB converts claims to the wire.
func ClaimsToPB(c *attest.Claims) *pb.Claims {
	return &pb.Claims{
		Tee: TEEToPB(c.TEE), Measurement: c.Measurement, Measurements: hexMap(c.Measurements),
		Config: hexMap(c.Config), Tcb: maps.Clone(c.TCB), TcbStatus: c.TCBStatus, Advisories: c.Advisories,
		Debug: c.Debug, Migration: c.Migration, PlatformSmtEnabled: string(c.PlatformSMTEnabled), PolicySmtAllowed: c.PolicySMTAllowed,
		ReportData: c.ReportData,
		Platform:   maps.Clone(c.Platform), Attributes: maps.Clone(c.Attributes),
	}
}

// Claims converts wire claims.
func Claims(p *pb.Claims) *attest.Claims {
	t, _ := TEE(p.GetTee())
	return &attest.Claims{
		TEE: t, Measurement: p.GetMeasurement(), Measurements: bytesMap(p.GetMeasurements()),
		Config: bytesMap(p.GetConfig()), TCB: p.GetTcb(), TCBStatus: p.GetTcbStatus(), Advisories: p.GetAdvisories(),
		Debug: p.GetDebug(), Migration: p.GetMigration(), PlatformSMTEnabled: attest.Tristate(p.GetPlatformSmtEnabled()),
		PolicySMTAllowed: p.PolicySmtAllowed, ReportData: p.GetReportData(),
		Platform: p.GetPlatform(), Attributes: p.GetAttributes(),
	}
}

// GrantsToPB converts grants to the wire.
func GrantsToPB(gs []release.Grant) []*pb.Grant {
	out := make([]*pb.Grant, 0, len(gs))
	for _, g := range gs {
		k := pb.Grant_KIND_SECRET
		if g.Kind == release.GrantDataKey {
			k = pb.Grant_KIND_DATA_KEY
		}
		out = append(out, &pb.Grant{Kind: k, Name: g.Name})
	}
	return out
}

// TokenKey is one published token key; its fields are those of the issuer's PublishedKey, which
// converts to it (wire does not import the issuer, so that the SDK does not link it).
type TokenKey struct {
	ID       string
	Public   *ecdsa.PublicKey
	NotAfter time.Time
}

// TokenKeysToPB fills the GetTokenKeys response from the keys an issuer publishes.
func TokenKeysToPB(keys []TokenKey) (*pb.GetTokenKeysResponse, error) {
	resp := &pb.GetTokenKeysResponse{}
	for _, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err != nil {
			return nil, err
		}
		tk := &pb.TokenKey{Kid: k.ID, PublicKey: der, Algorithm: "ES256"}
		if !k.NotAfter.IsZero() {
			tk.NotAfter = timestamppb.New(k.NotAfter)
		}
		resp.Keys = append(resp.Keys, tk)
	}
	return resp, nil
}
