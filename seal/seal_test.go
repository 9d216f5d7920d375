package seal

import (
	"bytes"
	"testing"
)

func TestSealOpen(t *testing.T) {
	for _, s := range []Suite{X25519, MLKEM768X25519} {
		t.Run(s.String(), func(t *testing.T) {
			sk, err := GenerateKey(s)
			if err != nil {
				t.Fatal(err)
			}
			pk, err := ParsePublicKey(s, sk.Public().Bytes())
			if err != nil {
				t.Fatal(err)
			}
			aad := ReleaseAAD("req-1", "hello/records", []byte("ctx"))
			ct, err := pk.Seal(aad, []byte("data key"))
			if err != nil {
				t.Fatal(err)
			}
			pt, err := sk.Open(aad, ct)
			if err != nil || !bytes.Equal(pt, []byte("data key")) {
				t.Fatalf("Open = %q, %v", pt, err)
			}
			for name, tc := range map[string]struct{ aad, ct []byte }{
				"other aad":   {ReleaseAAD("req-2", "hello/records", []byte("ctx")), ct},
				"flipped bit": {aad, flip(ct, len(ct)-1)},
				"flipped enc": {aad, flip(ct, 0)},
				"truncated":   {aad, ct[:10]},
			} {
				if _, err := sk.Open(tc.aad, tc.ct); err == nil {
					t.Errorf("%s: Open succeeded", name)
				}
			}
			other, _ := GenerateKey(s)
			if _, err := other.Open(aad, ct); err == nil {
				t.Error("other key opened the message")
			}
		})
	}
}

func TestUnsupportedSuite(t *testing.T) {
	for _, s := range []Suite{{}, {KEM: KEMX25519, KDF: 2, AEAD: AEADAES256GCM}, {KEM: 0x10, KDF: 1, AEAD: 2}, {KEM: KEMX25519, KDF: 1, AEAD: 1}} {
		if _, err := ParsePublicKey(s, make([]byte, 32)); err == nil {
			t.Errorf("suite %v accepted", s)
		}
	}
	if _, err := ParsePublicKey(X25519, make([]byte, 31)); err == nil {
		t.Error("31-byte X25519 key accepted")
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// TestSealerOnce: a Sealer made ahead of the plaintext seals exactly as Seal does, and only once.
func TestSealerOnce(t *testing.T) {
	for _, s := range []Suite{X25519, MLKEM768X25519} {
		sk, err := GenerateKey(s)
		if err != nil {
			t.Fatal(err)
		}
		sl, err := sk.Public().Sealer()
		if err != nil {
			t.Fatal(err)
		}
		aad := ReleaseAAD("req-1", "hello/records", nil)
		ct, err := sl.Seal(aad, []byte("data key"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := sk.Open(aad, ct); err != nil || string(pt) != "data key" {
			t.Fatalf("%s: Open = %q, %v", s, pt, err)
		}
		if _, err := sl.Seal(aad, []byte("another key")); err == nil {
			t.Fatalf("%s: a Sealer sealed twice", s)
		}
	}
}
