package envelope

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/secret"
)

// reusing hands out one data key for every object, as a source that caches keys for
// encryption would.
type reusing struct {
	KeySource
	once    sync.Once
	dek     []byte
	wrapped []byte
}

func (r *reusing) GenerateDataKey(ctx context.Context, name string, kc kms.Context) (*secret.Bytes, []byte, error) {
	var err error
	r.once.Do(func() {
		var k *secret.Bytes
		k, r.wrapped, err = r.KeySource.GenerateDataKey(ctx, name, kc)
		r.dek = bytes.Clone(k.Reveal())
	})
	return secret.New(bytes.Clone(r.dek)), r.wrapped, err
}

// TestReusedDataKey: two objects under the same data key still get different chunk keys, so
// equal plaintexts give unrelated ciphertexts and chunks do not move between them.
func TestReusedDataKey(t *testing.T) {
	ks := &reusing{KeySource: localSource(t)}
	pt := pattern(3 * MinChunkSize)
	a := sealWith(t, ks, caseCtx, pt, MinChunkSize, len(pt))
	b := sealWith(t, ks, caseCtx, pt, MinChunkSize, len(pt))
	ha, hb := headerLen(t, a), headerLen(t, b)
	if ha != hb || !bytes.Equal(a[ha-macSize-saltSize-len(ks.wrapped):ha-macSize-saltSize], ks.wrapped) {
		t.Fatal("objects do not share the wrapped key")
	}
	if bytes.Equal(a[ha:ha+64], b[hb:hb+64]) {
		t.Fatal("same data key and plaintext gave the same ciphertext: a (key, nonce) pair repeated")
	}
	mixed := append(bytes.Clone(a[:ha+MinChunkSize+16]), b[hb+MinChunkSize+16:]...)
	if _, err := openEvery(ks, caseCtx, mixed); !errors.Is(err, ErrChunkAuth) {
		t.Fatalf("chunks moved between objects under one data key: %v", err)
	}
}

func TestReaderAtConcurrent(t *testing.T) {
	ks := localSource(t)
	pt := pattern(40*MinChunkSize + 3)
	ct := sealWith(t, ks, caseCtx, pt, MinChunkSize, len(pt))
	ra, err := NewReaderAt(context.Background(), ks, bytes.NewReader(ct), int64(len(ct)), caseCtx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			p := make([]byte, 700)
			for off := g * 97; off < len(pt); off += 1313 {
				n, err := ra.ReadAt(p, int64(off))
				if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], pt[off:min(off+700, len(pt))]) {
					t.Errorf("ReadAt(%d): %d, %v", off, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

type failingWriter struct{ after int }

var errDisk = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errDisk
	}
	f.after--
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	ctx := context.Background()
	ks := localSource(t)
	if _, err := NewWriter(ctx, ks, &failingWriter{}, testKey, caseCtx, nil); !errors.Is(err, errDisk) {
		t.Fatalf("header write error lost: %v", err)
	}
	w, err := NewWriter(ctx, ks, &failingWriter{after: 2}, testKey, caseCtx, &Options{ChunkSize: MinChunkSize})
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for range 10 {
		if _, werr = w.Write(pattern(MinChunkSize)); werr != nil {
			break
		}
	}
	if !errors.Is(werr, errDisk) || !errors.Is(w.Close(), errDisk) {
		t.Fatalf("write error not sticky: %v", werr)
	}
	w, _ = NewWriter(ctx, ks, io.Discard, testKey, caseCtx, nil)
	w.Write([]byte("x"))
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close failed: %v", err)
	}
	if _, err := w.Write([]byte("y")); err == nil {
		t.Fatal("write after Close accepted")
	}
}
