package stream

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"testing"
)

const cs = 64

func testAEAD(t testing.TB) cipher.AEAD {
	block, err := aes.NewCipher(bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sealAll(t testing.TB, aead cipher.AEAD, pt []byte, writes int) []byte {
	var buf bytes.Buffer
	w := NewWriter(aead, []byte("aad"), cs, &buf)
	step := max(1, len(pt)/max(1, writes))
	for p := pt; len(p) > 0; {
		n := min(step, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openAll reads with Reader and with ReaderAt. It returns the Reader's result after checking
// that ReaderAt agrees: same plaintext on success, a failure of its own otherwise.
func openAll(aead cipher.AEAD, ct []byte) ([]byte, error) {
	got, err := io.ReadAll(NewReader(aead, []byte("aad"), cs, bytes.NewReader(ct)))
	at, errAt := readAtAll(aead, ct)
	if (err == nil) != (errAt == nil) {
		return nil, fmt.Errorf("Reader says %v, ReaderAt says %v", err, errAt)
	}
	if errAt != nil && !errors.Is(errAt, ErrChunkAuth) && !errors.Is(errAt, ErrTruncated) && !errors.Is(errAt, ErrTrailingData) {
		return nil, fmt.Errorf("ReaderAt: untyped error %v", errAt)
	}
	if err == nil && !bytes.Equal(at, got) {
		return nil, errors.New("Reader and ReaderAt differ")
	}
	return got, err
}

func readAtAll(aead cipher.AEAD, ct []byte) ([]byte, error) {
	ra, err := NewReaderAt(aead, []byte("aad"), cs, bytes.NewReader(ct), 0, int64(len(ct)))
	if err != nil {
		return nil, err
	}
	at := make([]byte, ra.Size())
	if len(at) == 0 {
		return at, nil
	}
	n, err := ra.ReadAt(at, 0)
	if err != nil {
		return at[:n], err
	}
	return at, nil
}

func TestRoundTrip(t *testing.T) {
	aead := testAEAD(t)
	for _, n := range []int{0, 1, cs - 1, cs, cs + 1, 2 * cs, 5*cs + 3} {
		for _, writes := range []int{1, 2, 3, 5, 1000} {
			pt := bytes.Repeat([]byte{'x'}, n)
			ct := sealAll(t, aead, pt, writes)
			want, _ := EncryptedSize(int64(n), cs)
			if int64(len(ct)) != want {
				t.Errorf("n=%d: sealed %d bytes, EncryptedSize says %d", n, len(ct), want)
			}
			got, err := openAll(aead, ct)
			if err != nil || !bytes.Equal(got, pt) {
				t.Errorf("n=%d writes=%d: %v", n, writes, err)
			}
		}
	}
}

func TestTamper(t *testing.T) {
	aead := testAEAD(t)
	pt := bytes.Repeat([]byte{'y'}, 3*cs)
	ct := sealAll(t, aead, pt, 1)
	enc := cs + TagSize
	swapped := append(append(append([]byte{}, ct[enc:2*enc]...), ct[:enc]...), ct[2*enc:]...)
	emptyLast := sealAll(t, aead, nil, 1)
	tests := []struct {
		name string
		ct   []byte
		want error
	}{
		{"flipped bit", func() []byte { c := bytes.Clone(ct); c[enc+5] ^= 1; return c }(), ErrChunkAuth},
		{"truncated at boundary", ct[:2*enc], ErrTruncated},
		{"truncated mid chunk", ct[:2*enc+20], ErrChunkAuth},
		{"truncated inside a tag", ct[:2*enc+10], ErrTruncated},
		{"truncated to nothing", nil, ErrTruncated},
		{"extended by a byte", append(bytes.Clone(ct), 0), ErrTrailingData},
		{"extended by a final chunk", append(bytes.Clone(ct), emptyLast...), ErrTrailingData},
		{"swapped chunks", swapped, ErrChunkAuth},
		{"final chunk only", ct[2*enc:], ErrChunkAuth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := openAll(aead, tc.ct)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// Only whole authenticated chunks may have come out before the error.
			if len(got)%cs != 0 || !bytes.Equal(got, pt[:len(got)]) {
				t.Fatalf("returned %d bytes of unauthenticated plaintext", len(got))
			}
		})
	}
}

func TestLayout(t *testing.T) {
	enc := int64(cs + TagSize)
	tests := []struct {
		size, chunks, plain int64
		ok                  bool
	}{
		{0, 0, 0, false},
		{TagSize - 1, 0, 0, false},
		{TagSize, 1, 0, true},
		{enc, 1, cs, true},
		{enc + TagSize, 0, 0, false}, // empty final chunk after a full one
		{enc + TagSize + 1, 2, cs + 1, true},
		{3 * enc, 3, 3 * cs, true},
	}
	for _, tc := range tests {
		c, p, err := Layout(tc.size, cs)
		if (err == nil) != tc.ok || (tc.ok && (c != tc.chunks || p != tc.plain)) {
			t.Errorf("Layout(%d) = %d, %d, %v", tc.size, c, p, err)
		}
	}
}

func TestReadAtRanges(t *testing.T) {
	aead := testAEAD(t)
	pt := make([]byte, 7*cs+5)
	for i := range pt {
		pt[i] = byte(i * 7)
	}
	ct := sealAll(t, aead, pt, 1)
	ra, err := NewReaderAt(aead, []byte("aad"), cs, bytes.NewReader(ct), 0, int64(len(ct)))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int{{0, 1}, {cs - 1, 2}, {cs, cs}, {3, 5 * cs}, {len(pt) - 1, 1}, {len(pt) - 3, 10}, {len(pt), 1}} {
		p := make([]byte, r[1])
		n, err := ra.ReadAt(p, int64(r[0]))
		want := pt[min(r[0], len(pt)):min(r[0]+r[1], len(pt))]
		if !bytes.Equal(p[:n], want) || (n < len(p)) != (err == io.EOF) {
			t.Errorf("ReadAt(%d, %d) = %d, %v", r[0], r[1], n, err)
		}
	}
	if _, err := ra.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("negative offset accepted")
	}
}

func FuzzOpen(f *testing.F) {
	aead := testAEAD(f)
	for _, n := range []int{0, 1, cs, 3*cs + 1} {
		f.Add(sealAll(f, aead, bytes.Repeat([]byte{1}, n), 1))
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		got, err := openAll(aead, ct)
		if err == nil {
			// Anything that opens must re-seal to the same bytes: the encoding is canonical.
			if !bytes.Equal(sealAll(t, aead, got, 1), ct) {
				t.Fatal("opened a non-canonical stream")
			}
		}
	})
}
