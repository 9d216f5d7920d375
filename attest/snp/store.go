package snp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// Keys and file names of SEV-SNP collateral in an attest.CollateralStore.
const (
	storeCRLFile  = "crl.der"
	storeVCEKFile = "vcek.der"
)

// crlStoreKey is "sev-snp/{product}/crl-{signer}", the same as its high-water mark.
func crlStoreKey(product, signer string) string {
	return string(attest.SEVSNP) + "/" + product + "/crl-" + signer
}

// vcekStoreKey is "sev-snp/" and the VCEK's cache path.
func vcekStoreKey(rel string) string { return string(attest.SEVSNP) + "/" + rel }

// DiskStore is the disk cache of CRLs as an attest.CollateralStore, in the layout trustd has
// always written: crl/{product}-{signer}.der under Dir and, beside it, ".fetched-at" (RFC 3339;
// a CRL without one counts as fetched long ago: it is refreshed before use and serves only as the
// last good CRL). VCEKs are cached by the verifier itself (vcekCachePath).
type DiskStore struct {
	Dir string
}

var _ attest.CollateralStore = DiskStore{}

func (d DiskStore) rel(key string) (string, error) {
	rest, ok := strings.CutPrefix(key, string(attest.SEVSNP)+"/")
	product, item, ok2 := strings.Cut(rest, "/")
	signer, ok3 := strings.CutPrefix(item, "crl-")
	if !ok || !ok2 || !ok3 || (signer != SignerVCEK && signer != SignerVLEK) || !simpleName(product) {
		return "", fmt.Errorf("collateral key %q is not a CRL's", key)
	}
	return crlCachePath(product, signer), nil
}

func simpleName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Load implements attest.CollateralStore.
func (d DiskStore) Load(_ context.Context, key string) (map[string][]byte, time.Time, error) {
	rel, err := d.rel(key)
	if err != nil {
		return nil, time.Time{}, err
	}
	b, err := readDirFile(d.Dir, rel)
	if err != nil || b == nil {
		return nil, time.Time{}, err
	}
	var at time.Time
	if s, err := os.ReadFile(filepath.Join(d.Dir, filepath.FromSlash(rel+crlFetchedSuffix))); err == nil {
		at, _ = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(s)))
	}
	return map[string][]byte{storeCRLFile: b}, at, nil
}

// Store implements attest.CollateralStore: the CRL first, then its fetch time.
func (d DiskStore) Store(_ context.Context, key string, files map[string][]byte, fetchedAt time.Time) error {
	rel, err := d.rel(key)
	if err != nil {
		return err
	}
	b := files[storeCRLFile]
	if len(b) == 0 || len(files) != 1 {
		return fmt.Errorf("collateral key %q: want exactly %s", key, storeCRLFile)
	}
	if err := writeCacheFile(d.Dir, rel, b); err != nil {
		return err
	}
	return writeCacheFile(d.Dir, rel+crlFetchedSuffix, []byte(fetchedAt.UTC().Format(time.RFC3339Nano)))
}
