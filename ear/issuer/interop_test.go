package issuer

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/medicus-cloud/trust/ear"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/medicus-cloud/trust/release"
	vear "github.com/veraison/ear"
	"github.com/veraison/go-cose"
)

// Every token form and key kind we issue, checked by independent libraries: veraison/ear (the
// EAR profile), go-jose (the JWT) and go-cose (the CWT). ear v1.1.3 verifies only JWTs, so the
// CWT is verified with go-cose and its claims, mapped label by label onto their JSON names
// (draft-ietf-rats-ear), are parsed and validated by ear's own decoder.
func TestInteropEARAndJOSE(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	i := newIssuer(t, &now)
	pub := &i.o.Key.PublicKey
	hybrid := ear.Confirmation{KEM: 0x647a, KDF: 1, AEAD: 2, PublicKey: make([]byte, 1216)}
	for _, tc := range []struct {
		tee string
		cnf ear.Confirmation
	}{
		{"sev-snp", x25519Key}, {"tdx", hybrid}, {"sgx", x25519Key}, {"insecure-simulated", hybrid},
	} {
		t.Run(tc.tee, func(t *testing.T) {
			cwt, jwt, _, err := i.IssueBoth(&ear.Claims{TEE: tc.tee, Policy: "hello", PolicyDigest: []byte{1, 2, 3},
				Grants: []release.Grant{{Kind: release.GrantSecret, Name: "hello/api-token"}}, Confirmation: tc.cnf, Measurement: []byte{0xff, 0xfe}})
			if err != nil {
				t.Fatal(err)
			}
			// JWT: veraison/ear.
			var ar vear.AttestationResult
			if err := ar.Verify(jwt, jwa.ES256(), pub); err != nil {
				t.Fatalf("ear: %v", err)
			}
			checkEAR(t, &ar, tc.tee)
			// JWT: go-jose, with issuer, audience and time.
			pj, err := josejwt.ParseSigned(string(jwt), []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			var std josejwt.Claims
			var priv struct {
				Cnf     map[string]any `json:"cnf"`
				Medicus struct {
					Measurement string `json:"measurement"`
				} `json:"medicus.trust"`
			}
			if err := pj.Claims(pub, &std, &priv); err != nil {
				t.Fatalf("go-jose: %v", err)
			}
			if err := std.Validate(josejwt.Expected{Issuer: "https://trust.example", AnyAudience: josejwt.Audience{"medicus-trust"}, Time: now}); err != nil {
				t.Fatalf("go-jose: %v", err)
			}
			if priv.Medicus.Measurement != "__4" { // base64url without padding of ff fe
				t.Errorf("measurement %q, want base64url without padding", priv.Medicus.Measurement)
			}
			if tc.cnf.KEM == ear.KEMX25519 {
				// go-jose has no X25519 JWKs; the members are RFC 8037's.
				if m := priv.Cnf["jwk"].(map[string]any); m["kty"] != "OKP" || m["crv"] != "X25519" {
					t.Errorf("cnf %v", priv.Cnf)
				}
			} else if _, ok := priv.Cnf["kid"]; !ok || len(priv.Cnf) != 1 {
				t.Errorf("hybrid cnf %v, want a kid thumbprint", priv.Cnf)
			}
			// CWT: go-cose, then ear's decoder over the claims.
			var msg cose.Sign1Message
			if err := msg.UnmarshalCBOR(cwt); err != nil {
				t.Fatal(err)
			}
			v, _ := cose.NewVerifier(cose.AlgorithmES256, pub)
			if err := msg.Verify(nil, v); err != nil {
				t.Fatalf("go-cose: %v", err)
			}
			var m map[any]any
			if err := cbor.Unmarshal(msg.Payload, &m); err != nil {
				t.Fatal(err)
			}
			cnf := m[uint64(8)].(map[any]any)
			if k, ok := cnf[uint64(1)].(map[any]any); tc.cnf.KEM == ear.KEMX25519 && (!ok || k[uint64(1)] != uint64(1) || k[int64(-1)] != uint64(4)) {
				t.Errorf("cnf %v, want an X25519 COSE_Key", cnf)
			} else if _, ok := cnf[uint64(3)].([]byte); tc.cnf.KEM != ear.KEMX25519 && (!ok || len(cnf) != 1) {
				t.Errorf("hybrid cnf %v, want a kid thumbprint", cnf)
			}
			js, err := json.Marshal(cborEARToJSON(t, m))
			if err != nil {
				t.Fatal(err)
			}
			var car vear.AttestationResult
			if err := car.UnmarshalJSON(js); err != nil {
				t.Fatalf("ear (CWT claims): %v\n%s", err, js)
			}
			checkEAR(t, &car, tc.tee)
		})
	}
}

func checkEAR(t *testing.T, ar *vear.AttestationResult, tee string) {
	t.Helper()
	a, ok := ar.Submods[tee]
	if *ar.Profile != vear.EatProfile || !ok || *a.Status != vear.TrustTierAffirming || *ar.VerifierID.Developer != DefaultDeveloper ||
		a.AppraisalPolicyID == nil || a.TrustVector == nil || a.TrustVector.Executables != vear.ApprovedRuntimeClaim {
		t.Fatalf("EAR %+v submods %+v", ar, ar.Submods)
	}
	before := *a.Status
	ar.UpdateStatusFromTrustVector()
	if *a.Status != before {
		t.Fatalf("trust vector says %v, status %v", *a.Status, before)
	}
}

// cborEARToJSON maps the EAR labels of a CWT claims set onto their JSON names.
func cborEARToJSON(t *testing.T, m map[any]any) map[string]any {
	tv := map[uint64]string{0: "instance-identity", 1: "configuration", 2: "executables", 3: "file-system", 4: "hardware",
		5: "runtime-opaque", 6: "storage-opaque", 7: "sourced-data"}
	out := map[string]any{}
	for k, v := range m {
		switch k {
		case uint64(265):
			out["eat_profile"] = v
		case uint64(6):
			out["iat"] = v
		case uint64(1004):
			vm := v.(map[any]any)
			out["ear.verifier-id"] = map[string]any{"developer": vm[uint64(0)], "build": vm[uint64(1)]}
		case uint64(266):
			subs := map[string]any{}
			for name, a := range v.(map[any]any) {
				am := a.(map[any]any)
				vec := map[string]any{}
				for ck, cv := range am[uint64(1001)].(map[any]any) {
					vec[tv[ck.(uint64)]] = cv
				}
				subs[name.(string)] = map[string]any{"ear.status": am[uint64(1000)], "ear.trustworthiness-vector": vec,
					"ear.appraisal-policy-id": am[uint64(1003)]}
			}
			out["submods"] = subs
		}
	}
	if len(out) != 4 {
		t.Fatalf("CWT claims lack EAR claims: %v", fmt.Sprint(m))
	}
	return out
}

// Tokens that are well signed but are not ours to accept.
func TestRefusedProfileAndAlgorithm(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	i := newIssuer(t, &now)
	// An EAR of another profile, signed by our own key.
	other := map[string]any{"eat_profile": "tag:example.org,2026:other", "iat": now.Unix(), "exp": now.Unix() + 60}
	p, _ := json.Marshal(other)
	h, _ := json.Marshal(ear.JWTHeader{Alg: "ES256", Kid: i.KeyID(), Typ: "JWT"})
	jwt := signRaw(t, i, h, p)
	if _, err := i.Verify(jwt); !errors.Is(err, ear.ErrProfile) {
		t.Errorf("JWT of another profile: %v, want ErrProfile", err)
	}
	cp, _ := cbor.Marshal(map[int]any{265: "tag:example.org,2026:other", 6: now.Unix()})
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(cose.AlgorithmES256)
	msg.Headers.Protected[cose.HeaderLabelKeyID] = []byte(i.KeyID())
	msg.Payload = cp
	msg.Sign(nil, nil, i.signer)
	cwt, _ := msg.MarshalCBOR()
	if _, err := i.Verify(cwt); !errors.Is(err, ear.ErrProfile) {
		t.Errorf("CWT of another profile: %v, want ErrProfile", err)
	}
	// A CWT whose protected header names another algorithm than the key's.
	es384 := cose.NewSign1Message()
	es384.Headers.Protected.SetAlgorithm(cose.AlgorithmES384)
	es384.Headers.Protected[cose.HeaderLabelKeyID] = []byte(i.KeyID())
	es384.Payload = cp
	es384.Signature = make([]byte, 96)
	b, _ := es384.MarshalCBOR()
	if _, err := i.Verify(b); !errors.Is(err, ear.ErrAlgorithm) {
		t.Errorf("CWT ES384: %v, want ErrAlgorithm", err)
	}
}

func signRaw(t *testing.T, i *Issuer, h, p []byte) []byte {
	t.Helper()
	s, err := i.signJWS(h, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
