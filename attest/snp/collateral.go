package snp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/medicus-cloud/trust/attest/fetch"
	"github.com/medicus-cloud/trust/internal/atomicfile"
)

// DefaultKDSURL is AMD's Key Distribution Service.
const DefaultKDSURL = "https://kdsintf.amd.com"

// maxCollateral bounds any one downloaded or read collateral file.
const maxCollateral = 1 << 20

// Getter fetches a URL. It is how the verifier reaches AMD's KDS; tests inject a fake.
type Getter interface {
	Get(ctx context.Context, url string) ([]byte, error)
}

// StatusError is an HTTP answer other than 200 OK.
type StatusError = fetch.StatusError

// HTTPGetter is a Getter over net/http that backs off and retries when the KDS throttles
// (HTTP 429) or is unavailable (HTTP 503), honouring Retry-After (fetch.Client). AMD asks
// clients not to repeat a request more often than every 10 seconds.
type HTTPGetter struct {
	// Client makes the requests; nil means a client with a 30-second timeout.
	Client *http.Client
	// Attempts is the number of tries; 0 means 4.
	Attempts int
	// Backoff is the first wait, doubled each retry (capped by MaxBackoff); 0 means 10 seconds.
	Backoff time.Duration
	// MaxBackoff caps one wait, including Retry-After; 0 means 2 minutes.
	MaxBackoff time.Duration
	// Sleep waits; nil means a timer that honours ctx. Tests inject a recorder.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Get implements Getter.
func (g *HTTPGetter) Get(ctx context.Context, url string) ([]byte, error) {
	c := fetch.Client{HTTP: g.Client, Attempts: g.Attempts, Backoff: g.Backoff, MaxBackoff: g.MaxBackoff,
		MaxBody: maxCollateral, Sleep: g.Sleep}
	_, body, err := c.Get(ctx, url)
	return body, err
}

// isNotFound reports whether err is the KDS saying it has no such certificate.
func isNotFound(err error) bool { return fetch.IsNotFound(err) }

// kdsHWID is the hwID path element of a VCEK request: all of CHIP_ID, or its first 8 bytes on
// Turin.
func kdsHWID(product string, chipID []byte) string {
	if product == Turin {
		return hex.EncodeToString(chipID[:turinHWIDSize])
	}
	return hex.EncodeToString(chipID)
}

// vcekURL is the KDS address of the VCEK of chipID at tcb.
func vcekURL(base, product string, chipID []byte, tcb TCB) string {
	q := fmt.Sprintf("blSPL=%d&teeSPL=%d&snpSPL=%d&ucodeSPL=%d", tcb.Bootloader, tcb.TEE, tcb.SNP, tcb.Microcode)
	if product == Turin {
		q = fmt.Sprintf("fmcSPL=%d&", tcb.FMC) + q
	}
	return fmt.Sprintf("%s/vcek/v1/%s/%s?%s", base, product, kdsHWID(product, chipID), q)
}

// crlURL is the KDS address of the CRL covering the ASK (signer "vcek") or ASVK ("vlek").
func crlURL(base, product, signer string) string {
	return fmt.Sprintf("%s/%s/v1/%s/crl", base, signer, product)
}

// Collateral directory and cache layout (relative paths, slash-separated):
//
//	vcek/{product}/{hwid hex}-{reported TCB as 16 hex digits}.der   one VCEK
//	crl/{product}-{vcek|vlek}.der                                   one ARK-signed CRL
//
// A collateral directory for a single machine may instead hold flat files, DER or PEM:
// vcek.der|pem, vlek.der|pem, and the CRLs crl-vcek.der|pem (or crl.der|pem) and
// crl-vlek.der|pem. Evidence.Collateral may carry vcek.der|pem and vlek.der|pem (certificates
// are verified against the roots whoever supplies them); CRLs are never taken from evidence.
func vcekCachePath(product string, chipID []byte, tcb uint64) string {
	return fmt.Sprintf("vcek/%s/%s-%016x.der", product, kdsHWID(product, chipID), tcb)
}

func crlCachePath(product, signer string) string {
	return fmt.Sprintf("crl/%s-%s.der", product, signer)
}

// readDirFile reads rel under dir; missing files are (nil, nil).
func readDirFile(dir, rel string) ([]byte, error) {
	if dir == "" {
		return nil, nil
	}
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCollateral+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCollateral {
		return nil, fmt.Errorf("%s: over %d bytes", rel, maxCollateral)
	}
	return b, nil
}

// writeCacheFile stores b at rel under dir atomically (temp file and rename); errors are
// returned, and callers ignore them: a cache that cannot be written is only slower.
func writeCacheFile(dir, rel string, b []byte) error {
	if dir == "" {
		return nil
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	// 0600, as the temporary files this wrote before were.
	return atomicfile.WriteFile(p, b, 0o600)
}
