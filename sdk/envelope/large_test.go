package envelope

import (
	"context"
	"errors"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// source is a fast deterministic plaintext of n bytes. Its period (1 MiB + 7) is prime to any
// chunk size, so no two nearby chunks are equal and a misordered copy changes the checksum.
type source struct {
	block []byte
	pos   int64
	n     int64
}

func newSource(n int64) *source { return &source{block: pattern(1<<20 + 7), n: n} }

func (s *source) Read(p []byte) (int, error) {
	if s.pos >= s.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.n-s.pos)]
	done := 0
	for done < len(p) {
		done += copy(p[done:], s.block[(s.pos+int64(done))%int64(len(s.block)):])
	}
	s.pos += int64(done)
	return done, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// streamThrough encrypts n bytes through NewWriter into a pipe, decrypts them with NewReader and
// checksums the result, sampling the heap all along. It returns the peak of heap in use above
// the starting point and the bytes allocated meanwhile, both in MiB.
func streamThrough(t fataler, ks KeySource, n int64) (peakMiB, allocMiB float64) {
	t.Helper()
	ctx := context.Background()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	stop := make(chan struct{})
	var peak uint64
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})

	pr, pw := io.Pipe()
	want := crc32.New(castagnoli)
	var writeErr error
	var writer sync.WaitGroup
	writer.Go(func() {
		w, err := NewWriter(ctx, ks, pw, testKey, caseCtx, nil)
		if err == nil {
			_, err = io.CopyBuffer(w, io.TeeReader(newSource(n), want), make([]byte, 32<<10))
			if err == nil {
				err = w.Close()
			}
		}
		writeErr = err
		pw.CloseWithError(err)
	})
	r, err := NewReader(ctx, ks, pr, caseCtx)
	if err != nil {
		pr.CloseWithError(err)
		writer.Wait()
		t.Fatal(err)
	}
	got := crc32.New(castagnoli)
	m, err := io.CopyBuffer(got, r, make([]byte, 32<<10))
	writer.Wait()
	close(stop)
	sampler.Wait()
	if err := errors.Join(err, writeErr); err != nil {
		t.Fatal(err)
	}
	if m != n || got.Sum32() != want.Sum32() {
		t.Fatal("plaintext changed on the way through")
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	const mib = 1 << 20
	return float64(peak-min(peak, before.HeapInuse)) / mib, float64(after.TotalAlloc-before.TotalAlloc) / mib
}

// TestStreamLargeFlatMemory streams 2 GiB through a writer and a reader: the heap must not grow
// with the size, and the allocations must be a fixed few buffers, not one per chunk.
func TestStreamLargeFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 2 GiB")
	}
	peak, alloc := streamThrough(t, localSource(t), 2<<30)
	t.Logf("2 GiB streamed: peak heap +%.2f MiB, %.2f MiB allocated", peak, alloc)
	if peak > 16 {
		t.Errorf("heap grew by %.1f MiB while streaming, want at most 16", peak)
	}
	if alloc > 16 {
		t.Errorf("%.1f MiB allocated while streaming 2 GiB: something allocates per chunk", alloc)
	}
}
