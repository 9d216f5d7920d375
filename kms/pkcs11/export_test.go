//go:build cgo

package pkcs11

import (
	"context"

	p11 "github.com/miekg/pkcs11"
)

// ForgetLogin logs the token out and drops the store's sessions, as an HSM that times out
// idle sessions does; the next call logs in again.
func ForgetLogin(s *Store) {
	s.mod.rw.RLock()
	defer s.mod.rw.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.free) > 0 {
		_ = s.mod.ctx.Logout(s.free[0].h)
	}
	s.dropLocked()
}

// SetKeyUsable sets CKA_ENCRYPT and CKA_DECRYPT of every version of a key, as an operator
// disabling it with the HSM's tools does.
func SetKeyUsable(s *Store, name string, usable bool) error {
	return s.do(context.Background(), "disable", func(sh p11.SessionHandle) error {
		vs, err := s.versions(sh, name)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if err := s.mod.ctx.SetAttributeValue(sh, v.h, []*p11.Attribute{
				p11.NewAttribute(p11.CKA_ENCRYPT, usable), p11.NewAttribute(p11.CKA_DECRYPT, usable),
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

// DestroyKey deletes every version of a key from the token.
func DestroyKey(s *Store, name string) error {
	return s.do(context.Background(), "destroy", func(sh p11.SessionHandle) error {
		vs, err := s.versions(sh, name)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if err := s.mod.ctx.DestroyObject(sh, v.h); err != nil {
				return err
			}
		}
		return nil
	})
}

// KeyAttributes reads what the token says of a key's first version, and tries to read its value.
func KeyAttributes(s *Store, name string) (sensitive, extractable bool, valueErr error, err error) {
	err = s.do(context.Background(), "inspect", func(sh p11.SessionHandle) error {
		vs, err := s.versions(sh, name)
		if err != nil {
			return err
		}
		a, err := s.mod.ctx.GetAttributeValue(sh, vs[0].h, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_SENSITIVE, nil), p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
		})
		if err != nil {
			return err
		}
		sensitive, extractable = boolAttr(a[0]), boolAttr(a[1])
		_, valueErr = s.mod.ctx.GetAttributeValue(sh, vs[0].h, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
		return nil
	})
	return
}

// ImportExtractableKey creates version 1 of a key from known bytes, extractable: what a careless
// operator might do with the HSM's tools.
func ImportExtractableKey(s *Store, name string) error {
	return s.do(context.Background(), "import", func(sh p11.SessionHandle) error {
		id := s.keyID(name)
		_, err := s.mod.ctx.CreateObject(sh, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
			p11.NewAttribute(p11.CKA_VALUE, make([]byte, 32)),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, false),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, true),
			p11.NewAttribute(p11.CKA_ENCRYPT, true),
			p11.NewAttribute(p11.CKA_DECRYPT, true),
			p11.NewAttribute(p11.CKA_ID, id),
			p11.NewAttribute(p11.CKA_LABEL, string(id)+"#1"),
		})
		return err
	})
}

// Prefix is a store's label prefix.
func Prefix(s *Store) string { return s.prefix }
