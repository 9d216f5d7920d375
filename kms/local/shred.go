package local

import (
	"context"
	"fmt"
	"time"

	"github.com/medicus-cloud/trust/kms"
)

var _ kms.Shredder = (*Keyring)(nil)

// ShredKey destroys every version of the named root key and leaves a tombstone, so that data
// keys wrapped under it fail with kms.ErrShredded. The keyring file is rewritten without the
// material (and the old file replaced); copies of the file made before, in backups, still hold
// it until they are deleted: see SECURITY.md ("Crypto-shredding").
func (k *Keyring) ShredKey(_ context.Context, name string) error {
	if err := kms.CheckName(name); err != nil {
		return err
	}
	return k.update(func(s *state) error {
		if _, gone := s.Shredded[name]; gone {
			return fmt.Errorf("key %q: %w", name, kms.ErrShredded)
		}
		rk, ok := s.Keys[name]
		if !ok {
			return fmt.Errorf("key %q: %w", name, kms.ErrNotFound)
		}
		for i := range rk.Versions {
			clear(rk.Versions[i].Material)
		}
		delete(s.Keys, name)
		if s.Shredded == nil {
			s.Shredded = map[string]time.Time{}
		}
		s.Shredded[name] = k.now().UTC()
		return nil
	})
}
