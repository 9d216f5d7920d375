// Package docs_test checks the test vectors of the protocol specification in docs/ against the
// implementation: every vector is recomputed with the project's own code. Run
// `go test ./docs -update` to regenerate the files after an intended format change (and say so
// in docs/, since clients in other languages depend on them).
package docs_test

import (
	"bytes"
	"crypto/hpke"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/challenge"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/seal"
)

var update = flag.Bool("update", false, "rewrite docs/vectors from the implementation")

// hexb is bytes as lowercase hex in JSON.
type hexb []byte

func (h hexb) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexb) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

func h(s string) hexb {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// vectors loads docs/vectors/name into v, or with -update writes v (as computed by the caller's
// generator gen) there first.
func vectors(t *testing.T, name string, v any, gen func()) {
	t.Helper()
	path := filepath.Join("vectors", name)
	if *update {
		gen()
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./docs -update)", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func suiteOf(name string) seal.Suite {
	switch name {
	case "X25519":
		return seal.X25519
	case "MLKEM768-X25519":
		return seal.MLKEM768X25519
	}
	panic("unknown suite " + name)
}

// docs/protocol.md, "Report data".
func TestReportDataVectors(t *testing.T) {
	type vec struct {
		Comment    string `json:"comment"`
		Suite      string `json:"suite"`
		Nonce      hexb   `json:"nonce"`
		SuiteID    hexb   `json:"suite_id"`
		PublicKey  hexb   `json:"public_key"`
		ReportData hexb   `json:"report_data"`
	}
	var vs []vec
	vectors(t, "report-data.json", &vs, func() {
		nonce := h("00112233445566778899aabbccddeeff" + "0000000065f1a2b3" + strings.Repeat("5a", 32))
		vs = nil
		for _, s := range []string{"X25519", "MLKEM768-X25519"} {
			kem, _ := hpke.NewKEM(suiteOf(s).KEM)
			sk, err := kem.DeriveKeyPair(bytes.Repeat([]byte{0x42}, 32))
			if err != nil {
				t.Fatal(err)
			}
			pk := sk.PublicKey().Bytes()
			rd := attest.ReportData(nonce, suiteOf(s).ID(), pk)
			vs = append(vs, vec{Comment: "workload key: HPKE DeriveKeyPair(ikm = 32 bytes of 0x42)", Suite: s, Nonce: nonce, SuiteID: suiteOf(s).ID(), PublicKey: pk, ReportData: rd[:]})
		}
	})
	for _, v := range vs {
		if got := suiteOf(v.Suite).ID(); !bytes.Equal(got, v.SuiteID) {
			t.Errorf("%s: suite_id %x, vector %x", v.Suite, got, v.SuiteID)
		}
		if _, err := seal.ParsePublicKey(suiteOf(v.Suite), v.PublicKey); err != nil {
			t.Errorf("%s: public key: %v", v.Suite, err)
		}
		got := attest.ReportData(v.Nonce, v.SuiteID, v.PublicKey)
		if !bytes.Equal(got[:], v.ReportData) {
			t.Errorf("%s: report data %x, vector %x", v.Suite, got, v.ReportData)
		}
	}
}

// fixedReader returns b over and over.
type fixedReader []byte

func (r fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r[i%len(r)]
	}
	return len(p), nil
}

// docs/protocol.md, "Nonce".
func TestNonceVectors(t *testing.T) {
	type vec struct {
		Comment  string `json:"comment"`
		Key      hexb   `json:"key"`
		Random   hexb   `json:"random"`
		IssuedAt int64  `json:"issued_at"`
		Expiry   int64  `json:"expiry"`
		Nonce    hexb   `json:"nonce"`
	}
	var v vec
	vectors(t, "nonce.json", &v, func() {
		v = vec{Comment: "lifetime 5 minutes; nonce = random(16) || expiry (u64be Unix seconds) || HMAC-SHA256(key, \"medicus-trust/v1 nonce\" || random || expiry)",
			Key: bytes.Repeat([]byte{0x01}, 32), Random: h("00112233445566778899aabbccddeeff"), IssuedAt: 1767225600}
		v.Expiry = v.IssuedAt + 300
	})
	now := time.Unix(v.IssuedAt, 0)
	iss, err := challenge.New(challenge.Options{Keys: [][]byte{v.Key}, Now: func() time.Time { return now }, Rand: fixedReader(v.Random)})
	if err != nil {
		t.Fatal(err)
	}
	n, exp, err := iss.Issue()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		v.Nonce = n
	}
	if !bytes.Equal(n, v.Nonce) || exp.Unix() != v.Expiry {
		t.Fatalf("nonce %x expiry %d, vector %x %d", n, exp.Unix(), v.Nonce, v.Expiry)
	}
	if err := iss.Check(v.Nonce); err != nil {
		t.Fatalf("fresh vector nonce refused: %v", err)
	}
	now = time.Unix(v.Expiry, 0)
	if err := iss.Check(v.Nonce); !errors.Is(err, challenge.ErrExpired) {
		t.Fatalf("at expiry: %v, want expired", err)
	}
	now = time.Unix(v.IssuedAt, 0)
	bad := bytes.Clone(v.Nonce)
	bad[len(bad)-1] ^= 1
	if err := iss.Check(bad); !errors.Is(err, challenge.ErrInvalid) {
		t.Fatalf("tampered MAC: %v, want invalid", err)
	}
	if *update {
		vectors(t, "nonce.json", &v, func() {})
	}
}

// docs/protocol.md, "Context" and "Release AAD".
func TestContextAndAADVectors(t *testing.T) {
	type vec struct {
		Comment   string            `json:"comment"`
		Context   map[string]string `json:"context"`
		Canonical hexb              `json:"canonical,omitempty"`
		Digest    hexb              `json:"digest,omitempty"`
		RequestID string            `json:"request_id,omitempty"`
		Name      string            `json:"name,omitempty"`
		AAD       hexb              `json:"release_aad,omitempty"`
		// Error is set for contexts that must be refused (InvalidArgument).
		Error string `json:"error,omitempty"`
	}
	var vs []vec
	vectors(t, "context.json", &vs, func() {
		seventeen := map[string]string{}
		for i := range 17 {
			seventeen[string(rune('a'+i))] = "v"
		}
		vs = []vec{
			{Comment: "empty context (GetSecret always uses it)", Context: map[string]string{}, RequestID: "r-1", Name: "uk-freiburg/viewer-token"},
			{Comment: "pairs sorted by key (bytewise)", Context: map[string]string{"tenant": "uk-freiburg", "case": "c-1042", "content-type": "application/dicom"}, RequestID: "01J0000000000000000000000", Name: "uk-freiburg/imaging"},
			{Comment: "UTF-8 value, empty value", Context: map[string]string{"patient": "Müller-Lüdenscheidt", "note": ""}, RequestID: "a.b_c-d", Name: "t/records"},
			{Comment: "uppercase key refused", Context: map[string]string{"Tenant": "x"}, Error: "invalid key context"},
			{Comment: "key must start with [a-z0-9]", Context: map[string]string{"-x": "x"}, Error: "invalid key context"},
			{Comment: "value over 256 bytes refused", Context: map[string]string{"k": strings.Repeat("v", 257)}, Error: "invalid key context"},
			{Comment: "more than 16 pairs refused", Context: seventeen, Error: "invalid key context"},
		}
		for i := range vs {
			if vs[i].Error != "" {
				continue
			}
			c, _ := kms.Context(vs[i].Context).Canonical()
			d, _ := kms.Context(vs[i].Context).Digest()
			vs[i].Canonical, vs[i].Digest, vs[i].AAD = c, d, seal.ReleaseAAD(vs[i].RequestID, vs[i].Name, c)
		}
	})
	for _, v := range vs {
		c, err := kms.Context(v.Context).Canonical()
		if v.Error != "" {
			if err == nil || !strings.Contains(err.Error(), v.Error) {
				t.Errorf("%s: %v, want %q", v.Comment, err, v.Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", v.Comment, err)
			continue
		}
		d, _ := kms.Context(v.Context).Digest()
		if !bytes.Equal(c, v.Canonical) || !bytes.Equal(d, v.Digest) {
			t.Errorf("%s: canonical %x digest %x, vector %x %x", v.Comment, c, d, v.Canonical, v.Digest)
		}
		if aad := seal.ReleaseAAD(v.RequestID, v.Name, c); !bytes.Equal(aad, v.AAD) {
			t.Errorf("%s: release AAD %x, vector %x", v.Comment, aad, v.AAD)
		}
	}
}

// docs/protocol.md, "Sealing (HPKE)". The vector's sealed message was made once by trustd's
// sealing; the test opens it with crypto/hpke configured only from the documented parameters, and
// opens a fresh seal.PublicKey.Seal output the same way.
func TestHPKEVectors(t *testing.T) {
	type vec struct {
		Suite      string `json:"suite"`
		KEM        uint16 `json:"kem_id"`
		KDF        uint16 `json:"kdf_id"`
		AEAD       uint16 `json:"aead_id"`
		Info       string `json:"info"`
		IKM        hexb   `json:"recipient_ikm"`
		PrivateKey hexb   `json:"recipient_private_key"`
		PublicKey  hexb   `json:"recipient_public_key"`
		AAD        hexb   `json:"aad"`
		Plaintext  hexb   `json:"plaintext"`
		Sealed     hexb   `json:"sealed"`
	}
	var vs []vec
	aad := seal.ReleaseAAD("r-1", "hello/records", mustCanon(t, kms.Context{"tenant": "demo"}))
	pt := bytes.Repeat([]byte{0xd0}, 32) // a data key
	vectors(t, "hpke.json", &vs, func() {
		vs = nil
		for _, s := range []string{"X25519", "MLKEM768-X25519"} {
			su := suiteOf(s)
			kem, _ := hpke.NewKEM(su.KEM)
			ikm := bytes.Repeat([]byte{0x42}, 32)
			sk, _ := kem.DeriveKeyPair(ikm)
			skb, _ := sk.Bytes()
			pk, err := seal.ParsePublicKey(su, sk.PublicKey().Bytes())
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := pk.Seal(aad, pt)
			if err != nil {
				t.Fatal(err)
			}
			vs = append(vs, vec{Suite: s, KEM: su.KEM, KDF: su.KDF, AEAD: su.AEAD, Info: seal.Info, IKM: ikm, PrivateKey: skb,
				PublicKey: pk.Bytes(), AAD: aad, Plaintext: pt, Sealed: sealed})
		}
	})
	open := func(t *testing.T, v vec, sealed []byte) []byte {
		t.Helper()
		kem, err := hpke.NewKEM(v.KEM)
		if err != nil {
			t.Fatal(err)
		}
		kdf, _ := hpke.NewKDF(v.KDF)
		aead, _ := hpke.NewAEAD(v.AEAD)
		sk, err := kem.NewPrivateKey(v.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		encLen := map[uint16]int{seal.KEMX25519: 32, seal.KEMMLKEM768X25519: 1120}[v.KEM]
		r, err := hpke.NewRecipient(sealed[:encLen], sk, kdf, aead, []byte(v.Info))
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Open(v.AAD, sealed[encLen:])
		if err != nil {
			t.Fatalf("%s: does not open with the documented parameters: %v", v.Suite, err)
		}
		return out
	}
	for _, v := range vs {
		t.Run(v.Suite, func(t *testing.T) {
			su := suiteOf(v.Suite)
			if su != (seal.Suite{KEM: v.KEM, KDF: v.KDF, AEAD: v.AEAD}) || v.Info != seal.Info || !bytes.Equal(v.AAD, aad) {
				t.Fatalf("suite, info or AAD differ from the implementation")
			}
			kem, _ := hpke.NewKEM(v.KEM)
			sk, _ := kem.DeriveKeyPair(v.IKM)
			if skb, _ := sk.Bytes(); !bytes.Equal(skb, v.PrivateKey) || !bytes.Equal(sk.PublicKey().Bytes(), v.PublicKey) {
				t.Fatal("DeriveKeyPair(recipient_ikm) differs from the vector's keys")
			}
			if got := open(t, v, v.Sealed); !bytes.Equal(got, v.Plaintext) {
				t.Fatalf("vector opens to %x", got)
			}
			pk, err := seal.ParsePublicKey(su, v.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := pk.Seal(v.AAD, v.Plaintext)
			if err != nil {
				t.Fatal(err)
			}
			if got := open(t, v, fresh); !bytes.Equal(got, v.Plaintext) {
				t.Fatalf("trustd's seal opens to %x", got)
			}
		})
	}
}

func mustCanon(t *testing.T, c kms.Context) []byte {
	t.Helper()
	b, err := c.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The repository specifies its protocol itself: README points at docs/, every vector file is
// described in the documents, and no document sends readers outside the repository for it.
func TestSpecIsInTheRepository(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(readme, []byte("../shared/DESIGN.md")) || !bytes.Contains(readme, []byte("docs/")) {
		t.Error("README.md must point at docs/, not ../shared/DESIGN.md")
	}
	var all []byte
	mds, _ := filepath.Glob("*.md")
	for _, m := range mds {
		b, _ := os.ReadFile(m)
		all = append(all, b...)
	}
	files, _ := filepath.Glob("vectors/*.json")
	if len(files) == 0 {
		t.Fatal("no vectors")
	}
	for _, f := range files {
		if !bytes.Contains(all, []byte(filepath.ToSlash(f))) {
			t.Errorf("%s is not described in docs/*.md", f)
		}
	}
}
