package intel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/internal/atomicfile"
)

// StoreKey is the attest.CollateralStore key of a platform's online collateral:
// "{tdx|sgx}/{fmspc}/{ca}", the same prefix as its high-water marks.
func StoreKey(tee attest.TEE, fmspc, ca string) (string, error) {
	fm, err := ParseFMSPC(fmspc)
	if err != nil {
		return "", err
	}
	if ca != CAPlatform && ca != CAProcessor {
		return "", fmt.Errorf("PCK CA %q is neither %s nor %s", ca, CAPlatform, CAProcessor)
	}
	if tee != attest.TDX && tee != attest.SGX {
		return "", fmt.Errorf("TEE %q has no Intel PCS collateral", tee)
	}
	return string(tee) + "/" + fm + "/" + ca, nil
}

// DiskStore is the disk cache of online collateral as an attest.CollateralStore: one directory
// {tee}-{ca}-{fmspc} per platform under Dir holding the collateral files (Files) and
// "fetched-at" (RFC 3339), the layout trustd has always written.
type DiskStore struct {
	Dir string
}

var _ attest.CollateralStore = DiskStore{}

func (d DiskStore) dir(key string) (string, error) {
	if k, ok := strings.CutSuffix(key, previousSuffix); ok {
		// The set a TCB recovery replaced, beside the platform's (previous.go).
		dir, err := d.dir(k)
		return filepath.Join(dir, "previous"), err
	}
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return "", fmt.Errorf("collateral key %q", key)
	}
	k, err := StoreKey(attest.TEE(parts[0]), parts[1], parts[2])
	if err != nil || k != key {
		return "", fmt.Errorf("collateral key %q: %v", key, err)
	}
	return filepath.Join(d.Dir, parts[0]+"-"+parts[2]+"-"+parts[1]), nil
}

// Load implements attest.CollateralStore; a directory without its fetch time is none.
func (d DiskStore) Load(_ context.Context, key string) (map[string][]byte, time.Time, error) {
	dir, err := d.dir(key)
	if err != nil {
		return nil, time.Time{}, err
	}
	b, err := os.ReadFile(filepath.Join(dir, fetchedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: %w", fetchedFile, err)
	}
	files := make(map[string][]byte, len(Files))
	for _, name := range Files {
		b, err := readLimited(filepath.Join(dir, name))
		if err != nil {
			return nil, time.Time{}, &FileError{name, err}
		}
		files[name] = b
	}
	return files, at, nil
}

// Store implements attest.CollateralStore: the files first, then the fetch time.
func (d DiskStore) Store(_ context.Context, key string, files map[string][]byte, fetchedAt time.Time) error {
	dir, err := d.dir(key)
	if err != nil {
		return err
	}
	c, err := CollateralFromFiles(files)
	if err != nil {
		return err
	}
	if err := c.WriteDir(dir); err != nil {
		return fmt.Errorf("collateral cache: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, fetchedFile), []byte(fetchedAt.UTC().Format(time.RFC3339Nano)), 0o644); err != nil {
		return fmt.Errorf("collateral cache: %w", err)
	}
	return nil
}
