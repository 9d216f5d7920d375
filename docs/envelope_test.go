package docs_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk/envelope"
	"github.com/medicus-cloud/trust/secret"
)

// fixedKeys is a KeySource with one data key, wrapped as the opaque bytes wrapped.
type fixedKeys struct{ dek, wrapped []byte }

func (f fixedKeys) GenerateDataKey(context.Context, string, kms.Context) (*secret.Bytes, []byte, error) {
	return secret.New(bytes.Clone(f.dek)), bytes.Clone(f.wrapped), nil
}

func (f fixedKeys) UnwrapDataKey(_ context.Context, _ string, w []byte, _ kms.Context) (*secret.Bytes, error) {
	if !bytes.Equal(w, f.wrapped) {
		return nil, errors.New("unknown wrapped key")
	}
	return secret.New(bytes.Clone(f.dek)), nil
}

type envelopeVector struct {
	Comment   string            `json:"comment"`
	KeyName   string            `json:"key_name"`
	Context   map[string]string `json:"context"`
	DEK       hexb              `json:"data_key"`
	Wrapped   hexb              `json:"wrapped_key"`
	ChunkSize int               `json:"chunk_size"`
	Plaintext hexb              `json:"plaintext"`
	Object    hexb              `json:"object"`
}

// docs/envelope.md. Each object was written once by sdk/envelope with a fixed data key; the
// test opens it with sdk/envelope and again with nothing but the standard library and the
// document. Version 1 is fixed (the SDK writes version 2 only); -update rewrites version 2.
func TestEnvelopeVectors(t *testing.T) {
	for _, tc := range []struct {
		file    string
		version byte
	}{{"envelope.json", 1}, {"envelope-v2.json", 2}} {
		t.Run(tc.file, func(t *testing.T) {
			var v envelopeVector
			vectors(t, tc.file, &v, func() {
				if tc.version != 2 {
					b, err := os.ReadFile(filepath.Join("vectors", tc.file))
					if err != nil || json.Unmarshal(b, &v) != nil {
						t.Fatalf("%s: %v", tc.file, err)
					}
					return
				}
				pt := make([]byte, 600) // chunk size 256: two full chunks and a final one of 88 bytes
				for i := range pt {
					pt[i] = byte(i)
				}
				v = envelopeVector{Comment: "version 2; chunk size 256 (the minimum; the SDK's default is 65536): two full chunks and a final chunk of 88 bytes; wrapped_key is opaque (from the key store)",
					KeyName: "uk-freiburg/records", Context: map[string]string{"tenant": "uk-freiburg", "case": "c-1042"},
					DEK: bytes.Repeat([]byte{0xd0}, 32), Wrapped: []byte("opaque wrapped key from the key store"), ChunkSize: envelope.MinChunkSize, Plaintext: pt}
				var obj bytes.Buffer
				w, err := envelope.NewWriter(context.Background(), fixedKeys{v.DEK, v.Wrapped}, &obj, v.KeyName, v.Context, &envelope.Options{ChunkSize: v.ChunkSize})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(v.Plaintext); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				v.Object = obj.Bytes()
			})
			openVector(t, tc.version, v)
		})
	}
}

func openVector(t *testing.T, version byte, v envelopeVector) {
	ks := fixedKeys{v.DEK, v.Wrapped}
	got, err := envelope.Decrypt(context.Background(), ks, v.Context, v.Object)
	if err != nil || !bytes.Equal(got, v.Plaintext) {
		t.Fatalf("sdk/envelope: %v", err)
	}
	// fixedKeys unwraps under any context, as no real key store does: the object itself
	// refuses another one (version 1 by its digest, version 2 by its MAC).
	want := envelope.ErrHeaderAuth
	if version == 1 {
		want = envelope.ErrWrongContext
	}
	if _, err := envelope.Decrypt(context.Background(), ks, kms.Context{"tenant": "other"}, v.Object); !errors.Is(err, want) {
		t.Fatalf("other context: %v", err)
	}

	// The same object, opened by the document alone.
	b := v.Object
	off := 0
	take := func(n int) []byte {
		if off+n > len(b) {
			t.Fatalf("object ends at %d, want %d more bytes", off, n)
		}
		p := b[off : off+n]
		off += n
		return p
	}
	if string(take(6)) != "MTENV\n" || !bytes.Equal(take(2), []byte{version, 1}) {
		t.Fatal("magic, version or suite")
	}
	cs := int(binary.BigEndian.Uint32(take(4)))
	name := string(take(int(take(1)[0])))
	wrapped := take(int(binary.BigEndian.Uint16(take(2))))
	wantDigest, _ := kms.Context(v.Context).Digest()
	if version == 1 && !bytes.Equal(take(32), wantDigest) {
		t.Fatal("version 1 context digest")
	}
	salt := take(32)
	signed := b[:off]
	mac := take(32)
	hdr := b[:off]
	if cs != v.ChunkSize || name != v.KeyName || !bytes.Equal(wrapped, v.Wrapped) {
		t.Fatalf("header fields: chunk %d name %q", cs, name)
	}
	if version == 2 && bytes.Contains(b, wantDigest) {
		t.Fatal("a version 2 object holds the context digest")
	}
	macKey, _ := hkdf.Key(sha256.New, v.DEK, salt, "medicus-trust/v1 envelope header", 32)
	m := hmac.New(sha256.New, macKey)
	m.Write(signed)
	if version == 2 {
		m.Write(wantDigest)
	}
	if !hmac.Equal(m.Sum(nil), mac) {
		t.Fatal("header MAC")
	}
	pk, _ := hkdf.Key(sha256.New, v.DEK, salt, "medicus-trust/v1 envelope payload", 32)
	block, _ := aes.NewCipher(pk)
	gcm, _ := cipher.NewGCM(block)
	var out []byte
	for counter := uint64(0); off < len(b); counter++ {
		n := min(cs+16, len(b)-off)
		last := off+n == len(b)
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[3:11], counter)
		if last {
			nonce[11] = 1
		}
		pt, err := gcm.Open(nil, nonce, take(n), hdr)
		if err != nil {
			t.Fatalf("chunk %d: %v", counter, err)
		}
		out = append(out, pt...)
	}
	if !bytes.Equal(out, v.Plaintext) {
		t.Fatal("plaintext by the document differs")
	}
}
