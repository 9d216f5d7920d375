package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/medicus-cloud/trust/ear"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medicus-cloud/trust/internal/atomicfile"
	"github.com/medicus-cloud/trust/internal/keyfile"
)

// Signing keys live in a directory, one PEM file (PKCS #8, mode 0600) per key, named
// "token-<unix seconds of creation>.pem". The newest is current and signs; older ones are
// "recent" until Keep after their successor was made: they still verify and are still
// published, so tokens they signed stay valid to their expiry and relying parties that cached
// the key set keep working. Older keys are ignored, and deleted by Rotate.

// DefaultKeep is how long a retired key stays accepted and published: ear.DefaultKeep.
const DefaultKeep = ear.DefaultKeep

const keyPrefix, keySuffix = "token-", ".pem"

// KeyDir configures LoadKeys and Rotate; the zero value other than Dir is usable.
type KeyDir struct {
	Dir string
	// Rand makes new keys; default crypto/rand.
	Rand io.Reader
	// Keep is how long retired keys stay valid; default DefaultKeep.
	Keep time.Duration
}

// KeySet is the current signing key and the recent public keys of a key directory.
type KeySet struct {
	Current *ecdsa.PrivateKey
	Created time.Time
	// Recent keys, newest first, with the time they stop being accepted.
	Recent []RecentKey
}

// RecentKey is a retired key still accepted until NotAfter.
type RecentKey struct {
	Public   *ecdsa.PublicKey
	NotAfter time.Time
}

// LoadKeys loads the key set of dir at time now, creating the directory and a first key if it
// has none.
func LoadKeys(dir string, now time.Time) (*KeySet, error) { return KeyDir{Dir: dir}.Load(now) }

// Rotate makes a new current key in dir, deletes keys retired more than DefaultKeep ago and
// returns the new set. Run it on a schedule (daily, say), then restart or reload trustd.
func Rotate(dir string, now time.Time) (*KeySet, error) { return KeyDir{Dir: dir}.Rotate(now) }

// Load is LoadKeys with d's options.
func (d KeyDir) Load(now time.Time) (*KeySet, error) {
	files, err := d.list(now)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if err := d.create(now); err != nil {
			return nil, err
		}
		if files, err = d.list(now); err != nil {
			return nil, err
		}
	}
	return d.set(files, now)
}

// Rotate is the function Rotate with d's options.
func (d KeyDir) Rotate(now time.Time) (*KeySet, error) {
	files, err := d.list(now)
	if err != nil {
		return nil, err
	}
	if len(files) > 0 && !now.After(files[0].created) {
		return nil, fmt.Errorf("token: rotate: current key %s is not older than now", files[0].name)
	}
	if err := d.create(now); err != nil {
		return nil, err
	}
	files, err = d.list(now)
	if err != nil {
		return nil, err
	}
	for i := 1; i < len(files); i++ {
		if !now.Before(files[i-1].created.Add(d.keep())) {
			if err := os.Remove(filepath.Join(d.Dir, files[i].name)); err != nil {
				return nil, fmt.Errorf("token: rotate: %w", err)
			}
		}
	}
	return d.Load(now)
}

func (d KeyDir) keep() time.Duration {
	if d.Keep <= 0 {
		return DefaultKeep
	}
	return d.Keep
}

type keyFile struct {
	name    string
	created time.Time
}

// list returns the key files, newest first.
func (d KeyDir) list(now time.Time) ([]keyFile, error) {
	if d.Dir == "" {
		return nil, errors.New("token: key directory not set")
	}
	ents, err := os.ReadDir(d.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token: keys: %w", err)
	}
	var files []keyFile
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, keyPrefix) || !strings.HasSuffix(n, keySuffix) {
			continue
		}
		sec, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(n, keyPrefix), keySuffix), 10, 64)
		if err != nil || sec <= 0 {
			return nil, fmt.Errorf("token: key file %s: name is not token-<unix seconds>.pem", n)
		}
		created := time.Unix(sec, 0)
		if created.After(now.Add(time.Minute)) {
			return nil, fmt.Errorf("token: key file %s: created in the future (%s)", n, created.UTC().Format(time.RFC3339))
		}
		files = append(files, keyFile{n, created})
	}
	slices.SortFunc(files, func(a, b keyFile) int { return b.created.Compare(a.created) })
	return files, nil
}

func (d KeyDir) create(now time.Time) error {
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return fmt.Errorf("token: keys: %w", err)
	}
	r := d.Rand
	if r == nil {
		r = rand.Reader
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), r)
	if err != nil {
		return fmt.Errorf("token: new key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	name := keyPrefix + strconv.FormatInt(now.Unix(), 10) + keySuffix
	// O_EXCL: two processes rotating at once must not overwrite each other's key.
	// WriteNew also means a crash never leaves a torn key that the next start would refuse.
	if err := atomicfile.WriteNew(filepath.Join(d.Dir, name), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("token: new key: %w", err)
	}
	return nil
}

func (d KeyDir) set(files []keyFile, now time.Time) (*KeySet, error) {
	ks := &KeySet{}
	for i, f := range files {
		if i > 0 && !now.Before(files[i-1].created.Add(d.keep())) {
			break
		}
		k, err := readKey(filepath.Join(d.Dir, f.name))
		if err != nil {
			return nil, err
		}
		if i == 0 {
			ks.Current, ks.Created = k, f.created
			continue
		}
		ks.Recent = append(ks.Recent, RecentKey{Public: &k.PublicKey, NotAfter: files[i-1].created.Add(d.keep())})
	}
	return ks, nil
}

func readKey(p string) (*ecdsa.PrivateKey, error) {
	// Shared key directories are provisioned by operators (a Kubernetes Secret volume with an
	// fsGroup, say): group read is allowed, access by others is not.
	b, err := keyfile.Read(p, "token: key")
	if err != nil {
		return nil, err
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" || len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("token: key file %s: want one PEM PRIVATE KEY block", p)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token: key file %s: %v", p, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("token: key file %s: not an ECDSA P-256 key", p)
	}
	return ek, nil
}

// Options returns issuer options that sign with the current key and accept the recent ones.
// Set Lifetime, Now and Rand on the result as needed.
func (ks *KeySet) Options(issuer string) Options {
	o := Options{Key: ks.Current, Issuer: issuer, NotAfter: map[string]time.Time{}}
	for _, r := range ks.Recent {
		o.Verify = append(o.Verify, r.Public)
		if kid, err := ear.KeyID(r.Public); err == nil {
			o.NotAfter[kid] = r.NotAfter
		}
	}
	return o
}
