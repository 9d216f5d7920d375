// Package collateral handles collateral bundles for air-gapped sites (issue 16): one file,
// signed by an operator key (COSE_Sign1), holding the Intel collateral of several platforms
// (FMSPCs, TDX and SGX) and the AMD VCEKs, VLEKs and CRLs of several SEV-SNP chips. trustd
// imports a bundle offline, verifies the operator key, refuses one older than the last it
// imported, and reports its age.
package collateral

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/internal/cosekey"
	"github.com/medicus-cloud/trust/policies"
)

// ContentType is the COSE content type of a bundle's payload.
const ContentType = "application/vnd.medicus.trust.collateral-bundle+cbor"

// Limits on what Open accepts.
const (
	MaxBundleSize = 64 << 20
	maxFiles      = 1 << 14
	maxFileSize   = 1 << 20
)

// Errors of bundles, for errors.Is.
var (
	ErrBadSignature = errors.New("collateral bundle signature invalid")
	ErrMalformed    = errors.New("collateral bundle malformed")
	ErrOlder        = errors.New("collateral bundle older than the one imported")
)

// Bundle is the content of a collateral bundle. File paths are slash-separated:
//
//	intel/{tdx|sgx}/{fmspc}/{file}   one platform's Intel collateral (intel.Files)
//	snp/vcek/{product}/{hwid}-{tcb}.der, snp/crl/{product}-{vcek|vlek}.der
//	                                 AMD collateral in the layout of an SEV-SNP collateral directory
type Bundle struct {
	// Issued is when the bundle was made; a trustd refuses a bundle issued before the one it
	// imported last.
	Issued time.Time
	Files  map[string][]byte
}

type payload struct {
	Version int               `cbor:"1,keyasint"`
	Issued  int64             `cbor:"2,keyasint"` // Unix seconds
	Files   map[string][]byte `cbor:"3,keyasint"`
}

var encMode, _ = cbor.CoreDetEncOptions().EncMode()

var decMode, _ = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, MaxMapPairs: maxFiles + 8,
	IndefLength: cbor.IndefLengthForbidden}.DecMode()

// Sign returns b as a COSE_Sign1 by key (ECDSA P-256 or Ed25519, as policy keys).
func Sign(b *Bundle, key crypto.Signer) ([]byte, error) {
	if err := checkFiles(b.Files); err != nil {
		return nil, err
	}
	p, err := encMode.Marshal(payload{Version: 1, Issued: b.Issued.Unix(), Files: b.Files})
	if err != nil {
		return nil, err
	}
	if _, err := algByType(key.Public()); err != nil {
		return nil, err
	}
	out, _, err := cosekey.Sign1(rand.Reader, key, ContentType, p, false)
	return out, err
}

// algByType is the COSE algorithm of an operator key: ECDSA P-256 or Ed25519, as policy keys.
func algByType(pub crypto.PublicKey) (cose.Algorithm, error) {
	alg, err := cosekey.Alg(pub)
	if err != nil {
		return 0, fmt.Errorf("operator key: %w", err)
	}
	return alg, nil
}

// Open verifies data under one of keys and decodes it. It returns the key ID that signed.
func Open(data []byte, keys policies.TrustKeys) (*Bundle, string, error) {
	if len(data) > MaxBundleSize {
		return nil, "", fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(data), MaxBundleSize)
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(data); err != nil {
		return nil, "", fmt.Errorf("%w: not a COSE_Sign1: %v", ErrMalformed, err)
	}
	if ct, _ := msg.Headers.Protected[cose.HeaderLabelContentType].(string); ct != ContentType {
		return nil, "", fmt.Errorf("%w: content type %q, want %q", ErrMalformed, ct, ContentType)
	}
	kidB, _ := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	pub, ok := keys[string(kidB)]
	if !ok {
		return nil, "", fmt.Errorf("%w: signed by key %q, which is not an operator key", ErrBadSignature, kidB)
	}
	alg, err := algByType(pub)
	if err != nil {
		return nil, "", err
	}
	if got, err := msg.Headers.Protected.Algorithm(); err != nil || got != alg {
		return nil, "", fmt.Errorf("%w: algorithm does not match key %s", ErrBadSignature, kidB)
	}
	v, err := cose.NewVerifier(alg, pub)
	if err != nil {
		return nil, "", err
	}
	if err := msg.Verify(nil, v); err != nil {
		return nil, "", fmt.Errorf("%w: does not verify under key %s", ErrBadSignature, kidB)
	}
	var p payload
	if err := decMode.Unmarshal(msg.Payload, &p); err != nil {
		return nil, "", fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if p.Version != 1 {
		return nil, "", fmt.Errorf("%w: version %d, want 1", ErrMalformed, p.Version)
	}
	if p.Issued <= 0 {
		return nil, "", fmt.Errorf("%w: no issue time", ErrMalformed)
	}
	if err := checkFiles(p.Files); err != nil {
		return nil, "", err
	}
	return &Bundle{Issued: time.Unix(p.Issued, 0).UTC(), Files: p.Files}, string(kidB), nil
}

// checkFiles accepts only the paths of the layout above, with no way out of the directory a
// bundle is extracted into.
func checkFiles(files map[string][]byte) error {
	if len(files) == 0 {
		return fmt.Errorf("%w: no files", ErrMalformed)
	}
	if len(files) > maxFiles {
		return fmt.Errorf("%w: %d files, limit %d", ErrMalformed, len(files), maxFiles)
	}
	for p, b := range files {
		if err := checkPath(p); err != nil {
			return err
		}
		if len(b) == 0 || len(b) > maxFileSize {
			return fmt.Errorf("%w: %s: %d bytes", ErrMalformed, p, len(b))
		}
	}
	return nil
}

func checkPath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w: file %q: %s", ErrMalformed, p, why) }
	if p != path.Clean(p) || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.Contains(p, "..") {
		return bad("not a clean relative path")
	}
	parts := strings.Split(p, "/")
	for _, s := range parts {
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				return bad("unexpected character")
			}
		}
		if s == "" || s[0] == '.' {
			return bad("empty or hidden path element")
		}
	}
	switch {
	case len(parts) == 4 && parts[0] == "intel" && (parts[1] == "tdx" || parts[1] == "sgx"):
		if _, err := intel.ParseFMSPC(parts[2]); err != nil {
			return bad("bad FMSPC")
		}
		for _, f := range intel.Files {
			if parts[3] == f {
				return nil
			}
		}
		return bad("not an Intel collateral file")
	case len(parts) == 4 && parts[0] == "snp" && parts[1] == "vcek" && strings.HasSuffix(parts[3], ".der"):
		return nil
	case len(parts) == 3 && parts[0] == "snp" && parts[1] == "crl" && strings.HasSuffix(parts[2], ".der"):
		return nil
	}
	return bad("not in the bundle layout (intel/{tdx|sgx}/FMSPC/FILE, snp/vcek/PRODUCT/FILE.der, snp/crl/FILE.der)")
}

// Digest is the SHA-256 of a bundle file, which names an import.
func Digest(data []byte) [32]byte { return sha256.Sum256(data) }

// Add reads an Intel collateral directory (trustctl collateral fetch) into b, under the TEE and
// FMSPC its TCB info names.
func (b *Bundle) AddIntelDir(dir string) error {
	c, err := intel.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	info, _, _, err := intel.ParseTCBInfo(c.TCBInfo)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	tee := "tdx"
	if info.ID == "SGX" {
		tee = "sgx"
	}
	fm, err := intel.ParseFMSPC(info.FMSPC)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	b.init()
	for name, data := range c.Map() {
		b.Files["intel/"+tee+"/"+fm+"/"+name] = data
	}
	return nil
}

// AddSNPDir reads an SEV-SNP collateral directory (the vcek/ and crl/ layout of trustd's
// cache) into b.
func (b *Bundle) AddSNPDir(dir string) error {
	b.init()
	n := 0
	for _, sub := range []string{"vcek", "crl"} {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d os.DirEntry, err error) error {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".der") {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			key := "snp/" + filepath.ToSlash(rel)
			if err := checkPath(key); err != nil {
				return err
			}
			b.Files[key] = data
			n++
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	if n == 0 {
		return fmt.Errorf("%s: no vcek/ or crl/ files", dir)
	}
	return nil
}

func (b *Bundle) init() {
	if b.Files == nil {
		b.Files = map[string][]byte{}
	}
}

// Extract writes the bundle into dir: dir/intel/{tee}/{fmspc}/ and dir/snp/, replacing what an
// earlier import left (the whole tree is built beside dir and swapped in).
func (b *Bundle) Extract(dir string) error {
	tmp := dir + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	for p, data := range b.Files {
		if err := checkPath(p); err != nil {
			return err
		}
		f := filepath.Join(tmp, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f, data, 0o644); err != nil {
			return err
		}
	}
	old := dir + ".old"
	_ = os.RemoveAll(old)
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// Item is one platform or chip in a bundle, for printing.
type Item struct {
	TEE, Platform string
	Files         int
}

// Items lists the platforms and chips a bundle covers, sorted.
func (b *Bundle) Items() []Item {
	m := map[[2]string]int{}
	for p := range b.Files {
		parts := strings.Split(p, "/")
		var k [2]string
		switch {
		case parts[0] == "intel":
			k = [2]string{parts[1], "fmspc " + parts[2]}
		case parts[1] == "crl":
			k = [2]string{"sev-snp", "crl " + strings.TrimSuffix(parts[2], ".der")}
		default:
			k = [2]string{"sev-snp", parts[1] + " " + parts[2] + " " + strings.SplitN(strings.TrimSuffix(parts[3], ".der"), "-", 2)[0]}
		}
		m[k]++
	}
	out := make([]Item, 0, len(m))
	for k, n := range m {
		out = append(out, Item{TEE: k[0], Platform: k[1], Files: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].TEE != out[j].TEE {
			return out[i].TEE < out[j].TEE
		}
		return out[i].Platform < out[j].Platform
	})
	return out
}
