package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/medicus-cloud/trust/kms"
)

var _ kms.Shredder = (*Store)(nil)

// Crypto-shredding on Vault. Transit derives a key per context from one named key, and a
// derived key cannot be destroyed on its own: shredding works on whole named keys. So the
// hierarchy is one transit key per patient (or case), named by an opaque ID (for example
// "uk-freiburg/pk-3f9c0a"): destroying that transit key makes every data key it wrapped, in
// any copy of any ciphertext, unreadable. See SECURITY.md ("Crypto-shredding").
//
// ShredKey first writes a tombstone in the tenant's KV mount (<kv>/data/<prefix>/<rest>/
// .shredded), then allows deletion on the transit key and deletes it. A crash in between leaves
// the tombstone and the key: a retried ShredKey finishes the job, and releases under the name
// already fail with kms.ErrShredded, because the tombstone is checked first. The admin policy
// needs "delete" on <transit>/keys/*.

type tombstone struct {
	Data struct {
		Data struct {
			ShreddedAt time.Time `json:"shredded_at"`
		} `json:"data"`
	} `json:"data"`
}

func (s *Store) tombstonePath(name string) (string, error) {
	p, err := s.router.kvPath(name, "data")
	if err != nil {
		return "", err
	}
	return p + "/.shredded", nil
}

// shreddedAt reports whether name has a tombstone. Errors other than absence are returned.
func (s *Store) shreddedAt(ctx context.Context, name string) (time.Time, bool, error) {
	p, err := s.tombstonePath(name)
	if err != nil {
		return time.Time{}, false, err
	}
	rep, err := s.call(ctx, "read tombstone "+strconv.Quote(name), http.MethodGet, p, nil, nil)
	if err != nil {
		return time.Time{}, false, err
	}
	switch {
	case rep.status == http.StatusNotFound:
		return time.Time{}, false, nil
	case rep.status >= 400:
		return time.Time{}, false, fmt.Errorf("vault: read tombstone of %q: Vault answered %d %s", name, rep.status, rep.message())
	}
	var t tombstone
	if err := json.Unmarshal(rep.body, &t); err != nil {
		return time.Time{}, false, fmt.Errorf("vault: tombstone of %q: malformed answer", name)
	}
	return t.Data.Data.ShreddedAt, true, nil
}

// checkShredded turns a missing key into kms.ErrShredded when it has a tombstone.
func (s *Store) checkShredded(ctx context.Context, name string, notFound error) error {
	at, ok, err := s.shreddedAt(ctx, name)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("vault: key %q: %w at %s", name, kms.ErrShredded, at.Format(time.RFC3339))
	}
	return notFound
}

// ShredKey destroys the named transit key for good (kms.Shredder).
func (s *Store) ShredKey(ctx context.Context, name string) error {
	if err := kms.CheckName(name); err != nil {
		return err
	}
	p, err := s.router.transitPath(name, "keys")
	if err != nil {
		return err
	}
	_, err = s.readKey(ctx, name)
	if isNotFound(err) {
		return s.checkShredded(ctx, name, err)
	}
	if err != nil {
		return err
	}
	tp, err := s.tombstonePath(name)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"data": map[string]any{"shredded_at": s.opts.Now().UTC()}})
	steps := []struct {
		op, method, path string
		body             []byte
	}{
		{"write tombstone", http.MethodPut, tp, body},
		{"allow deletion of key", http.MethodPut, p + "/config", []byte(`{"deletion_allowed":true}`)},
		{"delete key", http.MethodDelete, p, nil},
	}
	for _, st := range steps {
		rep, err := s.call(ctx, st.op+" "+strconv.Quote(name), st.method, st.path, nil, st.body)
		if err != nil {
			return err
		}
		if rep.status >= 400 {
			return fmt.Errorf("vault: shred %q: %s: Vault answered %d %s", name, st.op, rep.status, rep.message())
		}
		// From the tombstone on, this store checks the key again before any release.
		s.forgetKey(name)
	}
	s.forgetKey(name)
	return nil
}
