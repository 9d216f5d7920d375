// Package stream implements the STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár,
// "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015) over an AEAD
// with a 96-bit nonce: the plaintext is cut into chunks of a fixed size, each sealed under
// nonce = big-endian chunk counter (11 bytes) ‖ last-chunk flag (1 byte), with the same
// associated data on every chunk.
//
// The key must be unique to one stream; the caller (package envelope) derives it per object.
// Every chunk but the last holds exactly chunkSize plaintext bytes; the last holds 1 to chunkSize
// bytes, or 0 only when it is also the first (empty plaintext). That encoding is canonical, so
// truncation at a chunk boundary, extension, reordering and swapping are all detected: nothing of
// a chunk is returned before its tag has been checked.
//
// This package is the construction and nothing else: no header, no key handling.
package stream

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// TagSize is the overhead of each chunk.
const TagSize = 16

// NonceSize is the AEAD nonce size the construction needs.
const NonceSize = 12

// maxCounter bounds the chunk counter. The nonce has room for 2^88 chunks; int64 sizes run out
// long before, so the bound only keeps arithmetic on sizes from overflowing.
const maxCounter = 1<<62 - 1

// Errors. Package envelope re-exports them.
var (
	// ErrChunkAuth: a chunk failed authentication (modified, moved from elsewhere, or under
	// another key or header).
	ErrChunkAuth = errors.New("chunk failed authentication")
	// ErrTruncated: the data ends before the last chunk.
	ErrTruncated = errors.New("truncated: no final chunk")
	// ErrTrailingData: data follows the last chunk.
	ErrTrailingData = errors.New("data after the final chunk")
)

func nonce(n *[NonceSize]byte, counter uint64, last bool) {
	clear(n[:3])
	binary.BigEndian.PutUint64(n[3:11], counter)
	n[11] = 0
	if last {
		n[11] = 1
	}
}

// Seal appends the sealed chunk number counter to dst. dst and plaintext may overlap exactly
// (sealing in place), as with cipher.AEAD.
func Seal(aead cipher.AEAD, dst, plaintext, aad []byte, counter uint64, last bool) []byte {
	var n [NonceSize]byte
	nonce(&n, counter, last)
	return aead.Seal(dst, n[:], plaintext, aad)
}

// Open appends the plaintext of chunk number counter to dst, or fails with ErrChunkAuth,
// ErrTruncated (the chunk opens as a middle chunk where the last one was expected) or
// ErrTrailingData (it opens as the last chunk where more follows). Those diagnoses are tried only
// after the chunk has failed and return no plaintext. dst must not overlap ciphertext: a failed
// Open clears its output, and the diagnosis needs the ciphertext intact.
func Open(aead cipher.AEAD, dst, ciphertext, aad []byte, counter uint64, last bool) ([]byte, error) {
	var n [NonceSize]byte
	nonce(&n, counter, last)
	out, err := aead.Open(dst, n[:], ciphertext, aad)
	if err == nil {
		if last && counter > 0 && len(out) == len(dst) {
			// Writers never make an empty final chunk after a full one: not canonical.
			return nil, fmt.Errorf("%w: chunk %d is an empty final chunk", ErrChunkAuth, counter)
		}
		return out, nil
	}
	nonce(&n, counter, !last)
	if pt, err := aead.Open(nil, n[:], ciphertext, aad); err == nil {
		clear(pt)
		if last {
			return nil, fmt.Errorf("%w: chunk %d is not marked final", ErrTruncated, counter)
		}
		return nil, fmt.Errorf("%w: chunk %d is marked final", ErrTrailingData, counter)
	}
	return nil, fmt.Errorf("%w: chunk %d", ErrChunkAuth, counter)
}

// EncryptedSize returns the size of the sealed chunks for a plaintext of n bytes.
func EncryptedSize(n int64, chunkSize int) (int64, error) {
	if n < 0 || chunkSize <= 0 {
		return 0, errors.New("stream: negative size")
	}
	chunks := n / int64(chunkSize)
	if n%int64(chunkSize) != 0 || n == 0 {
		chunks++
	}
	if chunks > maxCounter || n > (1<<62)-chunks*TagSize {
		return 0, errors.New("stream: plaintext too large")
	}
	return n + chunks*TagSize, nil
}

// Layout checks that size bytes of sealed chunks can be a canonical stream and returns the
// number of chunks and the plaintext size. A size that no writer produces is ErrTruncated.
func Layout(size int64, chunkSize int) (chunks, plaintext int64, err error) {
	if chunkSize <= 0 {
		return 0, 0, errors.New("stream: bad chunk size")
	}
	enc := int64(chunkSize) + TagSize
	if size < TagSize {
		return 0, 0, fmt.Errorf("%w: %d bytes of chunks, at least %d needed", ErrTruncated, size, TagSize)
	}
	chunks = (size + enc - 1) / enc
	lastLen := size - (chunks-1)*enc
	if lastLen < TagSize || (chunks > 1 && lastLen == TagSize) {
		// A stub of a chunk, shorter than a tag, or an empty final chunk after a full one.
		return 0, 0, fmt.Errorf("%w: %d bytes of chunks is not a whole number of chunks", ErrTruncated, size)
	}
	if chunks > maxCounter {
		return 0, 0, errors.New("stream: too many chunks")
	}
	return chunks, size - chunks*TagSize, nil
}

// Writer seals what is written to it and writes the chunks to dst. Close seals the last chunk;
// it does not close dst. Memory is about two chunks, whatever the size of the stream.
//
// A full chunk is sealed at once as a middle chunk but held back until more data arrives, so
// whole chunks written in one piece are sealed straight from the caller's buffer without a copy.
// If Close comes first, the held chunk is opened again and resealed as the last one: that costs
// one chunk per stream, and only when the plaintext is a whole number of chunks.
type Writer struct {
	aead      cipher.AEAD
	aad       []byte
	dst       io.Writer
	buf       []byte // plaintext of a partial chunk; cap = chunkSize
	held      []byte // a sealed middle chunk not yet written, or empty
	chunkSize int
	counter   uint64 // of the next chunk to seal
	err       error
}

// NewWriter returns a Writer. aead must have a NonceSize nonce and a TagSize tag, and a key used
// for this stream only.
func NewWriter(aead cipher.AEAD, aad []byte, chunkSize int, dst io.Writer) *Writer {
	return &Writer{
		aead: aead, aad: aad, dst: dst, chunkSize: chunkSize,
		buf:  make([]byte, 0, chunkSize),
		held: make([]byte, 0, chunkSize+TagSize),
	}
}

var errClosed = errors.New("stream: write after Close")

// Write seals every full chunk of p; a partial one waits in the buffer for more.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	total := len(p)
	for len(p) > 0 {
		// More data follows the held chunk, so it is a middle chunk indeed.
		if len(w.held) > 0 {
			if err := w.writeHeld(); err != nil {
				return total - len(p), err
			}
		}
		if len(w.buf) == 0 && len(p) >= w.chunkSize {
			if err := w.seal(p[:w.chunkSize]); err != nil {
				return total - len(p), err
			}
			p = p[w.chunkSize:]
			continue
		}
		n := copy(w.buf[len(w.buf):w.chunkSize], p)
		w.buf = w.buf[:len(w.buf)+n]
		p = p[n:]
		if len(w.buf) == w.chunkSize {
			err := w.seal(w.buf)
			w.buf = w.buf[:0]
			if err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

// seal seals a full chunk as a middle chunk into held.
func (w *Writer) seal(plain []byte) error {
	if w.counter >= maxCounter {
		w.err = errors.New("stream: too many chunks")
		return w.err
	}
	w.held = Seal(w.aead, w.held[:0], plain, w.aad, w.counter, false)
	w.counter++
	return nil
}

func (w *Writer) writeHeld() error {
	_, err := w.dst.Write(w.held)
	w.held = w.held[:0]
	if err != nil {
		w.err = err
	}
	return err
}

// Close seals and writes the last chunk: the partial one in the buffer, else the held one
// resealed as last, else an empty one if nothing was written at all.
func (w *Writer) Close() error {
	if w.err != nil {
		if w.err == errClosed {
			return nil
		}
		return w.err
	}
	if len(w.held) > 0 && len(w.buf) > 0 {
		if err := w.writeHeld(); err != nil {
			return err
		}
	}
	last := w.counter
	if len(w.held) > 0 {
		last--
		plain, err := Open(w.aead, w.buf[:0], w.held, w.aad, last, false)
		if err != nil {
			w.err = err
			return err
		}
		w.buf = plain
	}
	out := Seal(w.aead, w.held[:0], w.buf, w.aad, last, true)
	clear(w.buf)
	w.buf = w.buf[:0]
	w.held = w.held[:0]
	if _, err := w.dst.Write(out); err != nil {
		w.err = err
		return err
	}
	w.err = errClosed
	return nil
}

// Reader opens a stream of chunks from src. It returns plaintext only from chunks that have
// been authenticated, and an error (never io.EOF) if the stream is cut short or extended.
type Reader struct {
	aead      cipher.AEAD
	aad       []byte
	src       io.Reader
	chunkSize int
	sealed    []byte // one sealed chunk plus one byte of lookahead
	have      int    // bytes of sealed filled
	plainBuf  []byte
	plain     []byte // unread plaintext of the current chunk
	counter   uint64
	err       error
}

// NewReader returns a Reader with the parameters the Writer had.
func NewReader(aead cipher.AEAD, aad []byte, chunkSize int, src io.Reader) *Reader {
	return &Reader{
		aead: aead, aad: aad, src: src, chunkSize: chunkSize,
		sealed:   make([]byte, chunkSize+TagSize+1),
		plainBuf: make([]byte, 0, chunkSize),
	}
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.plain, r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// next reads and opens one chunk; it is the last one exactly when no byte follows it. It
// returns io.EOF with the plaintext of the last chunk.
func (r *Reader) next() ([]byte, error) {
	enc := r.chunkSize + TagSize
	n, err := io.ReadFull(r.src, r.sealed[r.have:])
	r.have += n
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	last := r.have <= enc
	ct := r.sealed[:min(r.have, enc)]
	if len(ct) < TagSize {
		return nil, fmt.Errorf("%w: chunk %d is %d bytes, shorter than a tag", ErrTruncated, r.counter, len(ct))
	}
	if r.counter >= maxCounter {
		return nil, errors.New("stream: too many chunks")
	}
	plain, err := Open(r.aead, r.plainBuf[:0], ct, r.aad, r.counter, last)
	if err != nil {
		return nil, err
	}
	r.counter++
	if last {
		return plain, io.EOF
	}
	// The lookahead byte starts the next chunk.
	r.sealed[0] = r.sealed[enc]
	r.have = 1
	return plain, nil
}

// ReaderAt opens chunks of a sealed stream at random: each ReadAt reads and authenticates only
// the chunks it needs. It is safe for concurrent use if src is.
type ReaderAt struct {
	aead      cipher.AEAD
	aad       []byte
	src       io.ReaderAt
	base      int64 // offset of chunk 0 in src
	encSize   int64
	chunkSize int
	chunks    int64
	size      int64
	bufs      sync.Pool
}

// NewReaderAt returns a ReaderAt over the encSize bytes of chunks at offset base in src. It opens
// the last chunk at once, so that a stream cut at a chunk boundary fails here rather than
// reading as a shorter one.
func NewReaderAt(aead cipher.AEAD, aad []byte, chunkSize int, src io.ReaderAt, base, encSize int64) (*ReaderAt, error) {
	chunks, size, err := Layout(encSize, chunkSize)
	if err != nil {
		return nil, err
	}
	r := &ReaderAt{aead: aead, aad: aad, src: src, base: base, encSize: encSize, chunkSize: chunkSize, chunks: chunks, size: size}
	r.bufs.New = func() any {
		b := make([]byte, 2*chunkSize+TagSize)
		return &b
	}
	bp := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(bp)
	plain, err := r.chunk(*bp, chunks-1)
	clear(plain)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Size returns the size of the plaintext.
func (r *ReaderAt) Size() int64 { return r.size }

// chunk reads and opens chunk i using buf (2*chunkSize+TagSize bytes) for both forms.
func (r *ReaderAt) chunk(buf []byte, i int64) ([]byte, error) {
	enc := int64(r.chunkSize) + TagSize
	start := i * enc
	ct := buf[r.chunkSize : r.chunkSize+int(min(enc, r.encSize-start))]
	n, err := r.src.ReadAt(ct, r.base+start)
	if n < len(ct) {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: chunk %d is cut short", ErrTruncated, i)
		}
		return nil, err
	}
	return Open(r.aead, buf[:0], ct, r.aad, uint64(i), i == r.chunks-1)
}

// ReadAt implements io.ReaderAt. It returns the plaintext of the chunks that authenticated
// before the first one that did not, and that chunk's error.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("stream: negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	bp := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(bp)
	n := 0
	for n < len(p) && off < r.size {
		i := off / int64(r.chunkSize)
		plain, err := r.chunk(*bp, i)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], plain[off-i*int64(r.chunkSize):])
		clear(plain)
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
