package policies

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/veraison/go-cose"

	"github.com/medicus-cloud/trust/internal/atomicfile"
	"github.com/medicus-cloud/trust/internal/cosekey"
	"github.com/medicus-cloud/trust/internal/keyfile"
)

// A signed bundle is a directory:
//
//	*.yaml, *.yml, *.refs.json   the policies and reference values
//	bundle.json                  the manifest: version and SHA-256 of every file
//	signatures/*.cose            one detached COSE_Sign1 over bundle.json per signer
//
// Each security-team member signs the same manifest independently, in turn, by adding a file: no
// one has to merge signatures into a shared COSE_Sign structure (which go-cose can only sign all
// at once), signatures can be added through separate reviewed commits, and a bad signature names
// its own file. The manifest pins every file, so a signature covers the whole bundle and version.

// BundleKind is the kind of the bundle manifest.
const BundleKind = "PolicyBundle"

// ContentType is the COSE content type of the signed manifest.
const ContentType = "application/vnd.medicus.trust.policy-bundle+json"

// Errors of signed bundles, for errors.Is.
var (
	ErrUnsigned         = errors.New("policy bundle is not signed")
	ErrBadSignature     = errors.New("policy bundle signature invalid")
	ErrTooFewSignatures = errors.New("policy bundle has too few trusted signatures")
	ErrRollback         = errors.New("policy bundle version rolled back")
	ErrManifest         = errors.New("policy bundle manifest does not match its files")
)

// manifest is bundle.json. encoding/json writes map keys sorted, so the canonical form is the
// marshalled struct plus a newline.
type manifest struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Version    uint64            `json:"version"`
	Files      map[string]string `json:"files"`
}

func newManifest(version uint64, files map[string][]byte) (*manifest, error) {
	m := &manifest{APIVersion: APIVersion, Kind: BundleKind, Version: version, Files: map[string]string{}}
	for n, b := range files {
		if strings.ContainsAny(n, `/\`) || n == "" || n == manifestName {
			return nil, fmt.Errorf("bundle file name %q not allowed", n)
		}
		sum := sha256.Sum256(b)
		m.Files[n] = hex.EncodeToString(sum[:])
	}
	return m, nil
}

func (m *manifest) canonical() []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

func digest(b []byte) []byte {
	d := sha256.Sum256(b)
	return d[:]
}

func parseManifest(b []byte) (*manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrManifest, manifestName, jsonError(manifestName, b, err, dec.InputOffset()).Msg)
	}
	if m.APIVersion != APIVersion || m.Kind != BundleKind {
		return nil, fmt.Errorf("%w: %s: apiVersion %q kind %q, want %q %q", ErrManifest, manifestName, m.APIVersion, m.Kind, APIVersion, BundleKind)
	}
	if m.Version == 0 {
		return nil, fmt.Errorf("%w: %s: version must be at least 1", ErrManifest, manifestName)
	}
	if !bytes.Equal(m.canonical(), b) {
		return nil, fmt.Errorf("%w: %s is not in canonical form (written by policy sign only)", ErrManifest, manifestName)
	}
	return &m, nil
}

// matches reports how the files differ from the manifest.
func (m *manifest) matches(files map[string][]byte) error {
	got, err := newManifest(m.Version, files)
	if err != nil {
		return err
	}
	var diffs []string
	for _, n := range sortedKeys(m.Files) {
		switch h, ok := got.Files[n]; {
		case !ok:
			diffs = append(diffs, n+" is missing")
		case h != m.Files[n]:
			diffs = append(diffs, n+" was changed")
		}
	}
	for _, n := range sortedKeys(got.Files) {
		if _, ok := m.Files[n]; !ok {
			diffs = append(diffs, n+" is not in the manifest")
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: %s", ErrManifest, strings.Join(diffs, ", "))
	}
	return nil
}

// signedDir is what a bundle directory holds.
type signedDir struct {
	files    map[string][]byte
	manifest []byte // nil when absent
	sigs     map[string][]byte
}

func readSignedDir(dir string) (*signedDir, error) {
	files, err := readSources(dir)
	if err != nil {
		return nil, err
	}
	sd := &signedDir{files: files, sigs: map[string][]byte{}}
	sd.manifest, err = readBounded(filepath.Join(dir, manifestName))
	if errors.Is(err, os.ErrNotExist) {
		sd.manifest = nil
	} else if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(dir, sigDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".cose") {
			continue
		}
		if len(sd.sigs) >= 64 {
			return nil, fmt.Errorf("%s: more than 64 signatures", filepath.Join(dir, sigDir))
		}
		b, err := readBounded(filepath.Join(dir, sigDir, e.Name()))
		if err != nil {
			return nil, err
		}
		sd.sigs[e.Name()] = b
	}
	return sd, nil
}

// TrustKeys are the security-team public keys by key ID (keyfile.ID: base64url SHA-256 of the
// SPKI).
type TrustKeys map[string]crypto.PublicKey

// ParseTrustKeys reads PEM "PUBLIC KEY" blocks (ECDSA P-256 or Ed25519).
func ParseTrustKeys(pemData []byte) (TrustKeys, error) {
	keys := TrustKeys{}
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, pemData = pem.Decode(pemData)
		if blk == nil {
			break
		}
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("trust keys: PEM block %d is %q, want PUBLIC KEY", n, blk.Type)
		}
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("trust keys: PEM block %d: %v", n, err)
		}
		if _, err := coseAlg(pub); err != nil {
			return nil, fmt.Errorf("trust keys: PEM block %d: %v", n, err)
		}
		kid, err := keyfile.ID(pub)
		if err != nil {
			return nil, err
		}
		keys[kid] = pub
	}
	if len(bytes.TrimSpace(pemData)) > 0 {
		return nil, errors.New("trust keys: data after the last PEM block")
	}
	if len(keys) == 0 {
		return nil, errors.New("trust keys: no PUBLIC KEY PEM block")
	}
	return keys, nil
}

// ParseSigningKey reads a PEM private key (PKCS#8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY"),
// ECDSA P-256 or Ed25519.
func ParseSigningKey(pemData []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(pemData)
	if blk == nil {
		return nil, errors.New("signing key: no PEM block")
	}
	var k any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("signing key: PEM block %q, want PRIVATE KEY", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key: %v", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key: %T cannot sign", k)
	}
	if _, err := coseAlg(s.Public()); err != nil {
		return nil, fmt.Errorf("signing key: %v", err)
	}
	return s, nil
}

func coseAlg(pub crypto.PublicKey) (cose.Algorithm, error) { return cosekey.Alg(pub) }

// signManifest returns a detached COSE_Sign1 over manifest.
func signManifest(rand io.Reader, key crypto.Signer, manifest []byte) ([]byte, string, error) {
	return cosekey.Sign1(rand, key, ContentType, manifest, true)
}

// verifySignature checks one detached signature over manifest and returns its key ID. A
// signature by a key outside keys returns ("", nil): it does not count, and it is not an error,
// so that a new team member can sign before every trustd trusts them.
func verifySignature(name string, sig []byte, manifest []byte, keys TrustKeys) (string, error) {
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(sig); err != nil {
		return "", fmt.Errorf("%w: %s/%s: not a COSE_Sign1: %v", ErrBadSignature, sigDir, name, err)
	}
	if msg.Payload != nil {
		return "", fmt.Errorf("%w: %s/%s: payload must be detached", ErrBadSignature, sigDir, name)
	}
	kidB, ok := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	if !ok {
		return "", fmt.Errorf("%w: %s/%s: no protected key ID", ErrBadSignature, sigDir, name)
	}
	if ct, _ := msg.Headers.Protected[cose.HeaderLabelContentType].(string); ct != ContentType {
		return "", fmt.Errorf("%w: %s/%s: content type %q, want %q", ErrBadSignature, sigDir, name, ct, ContentType)
	}
	pub, ok := keys[string(kidB)]
	if !ok {
		return "", nil
	}
	alg, _ := coseAlg(pub)
	if got, err := msg.Headers.Protected.Algorithm(); err != nil || got != alg {
		return "", fmt.Errorf("%w: %s/%s: algorithm does not match key %s", ErrBadSignature, sigDir, name, kidB)
	}
	v, err := cose.NewVerifier(alg, pub)
	if err != nil {
		return "", err
	}
	msg.Payload = manifest
	if err := msg.Verify(nil, v); err != nil {
		return "", fmt.Errorf("%w: %s/%s: does not verify under key %s", ErrBadSignature, sigDir, name, kidB)
	}
	return string(kidB), nil
}

// VerifyOptions say which signatures a bundle needs.
type VerifyOptions struct {
	Keys TrustKeys
	// Threshold is how many distinct trusted keys must have signed (m of n). Zero means all of
	// Keys: the safe reading of an unset threshold.
	Threshold int
}

func (o VerifyOptions) threshold() (int, error) {
	if len(o.Keys) == 0 {
		return 0, errors.New("no trusted policy keys configured")
	}
	m := o.Threshold
	if m == 0 {
		m = len(o.Keys)
	}
	if m < 0 || m > len(o.Keys) {
		return 0, fmt.Errorf("threshold %d of %d trusted keys is impossible", m, len(o.Keys))
	}
	return m, nil
}

// LoadSigned reads a signed bundle directory and returns it only if its files match the manifest
// and at least Threshold trusted keys signed the manifest. Any signature that fails to verify is
// an error even if enough others verify: a tampered file is a reason to stop, not to count.
func LoadSigned(dir string, o VerifyOptions) (*Bundle, error) {
	m, err := o.threshold()
	if err != nil {
		return nil, err
	}
	sd, err := readSignedDir(dir)
	if err != nil {
		return nil, err
	}
	return sd.verify(dir, o.Keys, m)
}

func (sd *signedDir) verify(dir string, keys TrustKeys, threshold int) (*Bundle, error) {
	if sd.manifest == nil {
		return nil, fmt.Errorf("%w: %s has no %s (run policy sign)", ErrUnsigned, dir, manifestName)
	}
	man, err := parseManifest(sd.manifest)
	if err != nil {
		return nil, err
	}
	if err := man.matches(sd.files); err != nil {
		return nil, err
	}
	if len(sd.sigs) == 0 {
		return nil, fmt.Errorf("%w: %s has no signatures", ErrUnsigned, filepath.Join(dir, sigDir))
	}
	valid := map[string]bool{}
	for _, n := range sortedKeys(sd.sigs) {
		kid, err := verifySignature(n, sd.sigs[n], sd.manifest, keys)
		if err != nil {
			return nil, err
		}
		if kid != "" {
			valid[kid] = true
		}
	}
	signers := sortedKeys(valid)
	if len(signers) < threshold {
		return nil, fmt.Errorf("%w: %d of the %d required (valid: %s)", ErrTooFewSignatures, len(signers), threshold, orNone(signers))
	}
	b, err := parseBundle(sd.files, man.Version)
	if err != nil {
		return nil, err
	}
	b.Signers = signers
	return b, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// SignDir adds one signature by key to the bundle in dir. If dir has no manifest yet, version
// (at least 1) is required and the manifest is written; otherwise version is 0 or the manifest's,
// and the files must still match it — a second signer signs exactly what the first signed. It
// returns the key ID and the signature file written.
func SignDir(dir string, key crypto.Signer, version uint64, rand io.Reader) (kid, file string, err error) {
	sd, err := readSignedDir(dir)
	if err != nil {
		return "", "", err
	}
	// Never sign a bundle that would not load.
	if _, err := Parse(sd.files); err != nil {
		return "", "", fmt.Errorf("not signing %s: %w", dir, err)
	}
	var man *manifest
	if sd.manifest != nil {
		man, err = parseManifest(sd.manifest)
		if err != nil {
			return "", "", err
		}
		if version != 0 && version != man.Version {
			return "", "", fmt.Errorf("%s is version %d; to sign version %d remove %s and %s first", manifestName, man.Version, version, manifestName, sigDir)
		}
		if err := man.matches(sd.files); err != nil {
			return "", "", fmt.Errorf("%w; the signed files changed: remove %s and %s and sign a new version", err, manifestName, sigDir)
		}
	} else {
		if version == 0 {
			return "", "", fmt.Errorf("%s has no %s: give the bundle version (at least 1)", dir, manifestName)
		}
		if len(sd.sigs) > 0 {
			return "", "", fmt.Errorf("%s holds signatures but no %s", filepath.Join(dir, sigDir), manifestName)
		}
		man, err = newManifest(version, sd.files)
		if err != nil {
			return "", "", err
		}
		sd.manifest = man.canonical()
		if err := atomicfile.WriteFile(filepath.Join(dir, manifestName), sd.manifest, 0o644); err != nil {
			return "", "", err
		}
	}
	sig, kid, err := signManifest(rand, key, sd.manifest)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, sigDir), 0o755); err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(kid))
	file = filepath.Join(dir, sigDir, hex.EncodeToString(sum[:8])+".cose")
	return kid, file, atomicfile.WriteFile(file, sig, 0o644)
}

// Manifest returns the version and digest (the bundle digest) of the manifest in dir.
func Manifest(dir string) (uint64, []byte, error) {
	man, err := readBounded(filepath.Join(dir, manifestName))
	if err != nil {
		return 0, nil, err
	}
	m, err := parseManifest(man)
	if err != nil {
		return 0, nil, err
	}
	return m.Version, digest(man), nil
}

// Required is how many distinct trusted keys must have signed under o: Threshold, or all of Keys
// when it is zero.
func (o VerifyOptions) Required() (int, error) { return o.threshold() }
