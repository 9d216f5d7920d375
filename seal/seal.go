// Package seal implements the release sealing of DESIGN.md: HPKE base mode (RFC 9180, Go's
// crypto/hpke) to an ephemeral workload key, with KDF HKDF-SHA256 and AEAD AES-256-GCM, and a
// KEM of X25519 or the ML-KEM-768+X25519 hybrid.
//
// trustd seals with Seal; the workload opens with PrivateKey.Open. Nothing else is offered: the
// suite set is closed, so a client cannot ask for a weaker one.
package seal

import (
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
)

// Info is the HPKE info string of every release.
const Info = "medicus-trust/v1 release"

// KEM identifiers (RFC 9180, draft-ietf-hpke-pq).
const (
	KEMX25519         uint16 = 0x0020
	KEMMLKEM768X25519 uint16 = 0x647a
	KDFHKDFSHA256     uint16 = 0x0001
	AEADAES256GCM     uint16 = 0x0002
)

// Suite is an HPKE cipher suite.
type Suite struct {
	KEM, KDF, AEAD uint16
}

// Supported suites.
var (
	X25519         = Suite{KEM: KEMX25519, KDF: KDFHKDFSHA256, AEAD: AEADAES256GCM}
	MLKEM768X25519 = Suite{KEM: KEMMLKEM768X25519, KDF: KDFHKDFSHA256, AEAD: AEADAES256GCM}
)

// ErrUnsupportedSuite is returned for any suite other than the two above.
var ErrUnsupportedSuite = errors.New("unsupported HPKE suite")

// ID returns the RFC 9180 suite_id: "HPKE" || kem || kdf || aead.
func (s Suite) ID() []byte {
	b := make([]byte, 10)
	copy(b, "HPKE")
	binary.BigEndian.PutUint16(b[4:], s.KEM)
	binary.BigEndian.PutUint16(b[6:], s.KDF)
	binary.BigEndian.PutUint16(b[8:], s.AEAD)
	return b
}

func (s Suite) String() string {
	switch s {
	case X25519:
		return "X25519/HKDF-SHA256/AES-256-GCM"
	case MLKEM768X25519:
		return "MLKEM768-X25519/HKDF-SHA256/AES-256-GCM"
	}
	return fmt.Sprintf("kem=%#04x kdf=%#04x aead=%#04x", s.KEM, s.KDF, s.AEAD)
}

// Check reports whether s is one of the supported suites.
func (s Suite) Check() error {
	if s != X25519 && s != MLKEM768X25519 {
		return fmt.Errorf("%w: %s", ErrUnsupportedSuite, s)
	}
	return nil
}

func (s Suite) kem() (hpke.KEM, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	return hpke.NewKEM(s.KEM)
}

// PublicKey is a workload's HPKE public key in a supported suite.
type PublicKey struct {
	suite Suite
	pk    hpke.PublicKey
}

// ParsePublicKey checks the suite and deserializes the key.
func ParsePublicKey(s Suite, b []byte) (*PublicKey, error) {
	kem, err := s.kem()
	if err != nil {
		return nil, err
	}
	pk, err := kem.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key is not a valid %s key: %w", s, err)
	}
	return &PublicKey{suite: s, pk: pk}, nil
}

// Suite returns the key's suite.
func (p *PublicKey) Suite() Suite { return p.suite }

// Bytes returns the serialized public key.
func (p *PublicKey) Bytes() []byte { return p.pk.Bytes() }

// Seal encrypts plaintext to p with the given associated data. The result is enc || ciphertext.
func (p *PublicKey) Seal(aad, plaintext []byte) ([]byte, error) {
	s, err := p.Sealer()
	if err != nil {
		return nil, err
	}
	return s.Seal(aad, plaintext)
}

// Sealer does the public-key half of Seal (the HPKE encapsulation) ahead of the plaintext, so
// that a caller can run it while it waits for the plaintext (trustd, while the key store
// answers). The Sealer seals one message.
func (p *PublicKey) Sealer() (*Sealer, error) {
	enc, sender, err := hpke.NewSender(p.pk, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(Info))
	if err != nil {
		return nil, fmt.Errorf("hpke setup: %w", err)
	}
	return &Sealer{enc: enc, sender: sender}, nil
}

// Sealer is an HPKE context ready to seal one message to a public key.
type Sealer struct {
	enc    []byte
	sender *hpke.Sender
	used   bool
}

// Seal encrypts plaintext with the given associated data, exactly as PublicKey.Seal does. A
// second call fails: each message gets its own encapsulation.
func (s *Sealer) Seal(aad, plaintext []byte) ([]byte, error) {
	if s.used {
		return nil, errors.New("hpke seal: this sealer was used already")
	}
	s.used = true
	ct, err := s.sender.Seal(aad, plaintext)
	if err != nil {
		return nil, fmt.Errorf("hpke seal: %w", err)
	}
	return append(s.enc, ct...), nil
}

// PrivateKey is an ephemeral workload key. It never leaves the workload.
type PrivateKey struct {
	suite Suite
	sk    hpke.PrivateKey
}

// GenerateKey makes a fresh key pair in suite s.
func GenerateKey(s Suite) (*PrivateKey, error) {
	kem, err := s.kem()
	if err != nil {
		return nil, err
	}
	sk, err := kem.GenerateKey()
	if err != nil {
		return nil, err
	}
	return &PrivateKey{suite: s, sk: sk}, nil
}

// Public returns the public half.
func (k *PrivateKey) Public() *PublicKey {
	return &PublicKey{suite: k.suite, pk: k.sk.PublicKey()}
}

// Suite returns the key's suite.
func (k *PrivateKey) Suite() Suite { return k.suite }

// encSize is the encapsulated key size of each KEM.
func encSize(kem uint16) int {
	switch kem {
	case KEMX25519:
		return 32
	case KEMMLKEM768X25519:
		return 1088 + 32
	}
	return 0
}

// Open decrypts enc || ciphertext produced by Seal with the same associated data.
func (k *PrivateKey) Open(aad, sealed []byte) ([]byte, error) {
	n := encSize(k.suite.KEM)
	if len(sealed) < n+16 {
		return nil, errors.New("sealed message too short")
	}
	r, err := hpke.NewRecipient(sealed[:n], k.sk, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte(Info))
	if err != nil {
		return nil, fmt.Errorf("hpke setup: %w", err)
	}
	pt, err := r.Open(aad, sealed[n:])
	if err != nil {
		return nil, errors.New("sealed message does not open under this key and context")
	}
	return pt, nil
}

// ReleaseAAD is the associated data of a release: the request ID, the name released and the
// canonical context, each length-prefixed, after a label.
func ReleaseAAD(requestID, name string, canonicalContext []byte) []byte {
	var b []byte
	for _, part := range [][]byte{[]byte("medicus-trust/v1 release-aad"), []byte(requestID), []byte(name), canonicalContext} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(part)))
		b = append(b, part...)
	}
	return b
}
