package sdk

import (
	"context"
	"io"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk/envelope"
)

// The envelope methods encrypt patient data with a fresh data key per object from trustd. The
// wrapped key and a versioned header travel with the ciphertext; the context (tenant, case or
// patient pseudonym, content type) is bound both as the key's derivation context and as
// associated data, so a ciphertext moved to another case cannot be opened. Unwrapped data keys are
// cached (Options.KeyCache) and wiped on eviction and on Close. See package sdk/envelope for the
// format and the errors.

// KeySource returns the client's data keys as an envelope.KeySource, through the same cache of
// unwrapped keys as the envelope methods: pass it to code written against package sdk/envelope.
// The cache is wiped on Close.
func (c *Client) KeySource() envelope.KeySource { return c.keys }

// Encrypt seals one record under a fresh data key of keyName bound to kc. It is the recommended
// way to encrypt a record that fits in memory; use NewWriter for larger objects.
func (c *Client) Encrypt(ctx context.Context, keyName string, kc kms.Context, plaintext []byte) ([]byte, error) {
	return envelope.Encrypt(ctx, c.keys, keyName, kc, plaintext)
}

// Decrypt opens a record made by Encrypt under the same context.
func (c *Client) Decrypt(ctx context.Context, kc kms.Context, ciphertext []byte) ([]byte, error) {
	return envelope.Decrypt(ctx, c.keys, kc, ciphertext)
}

// NewWriter streams an object of any size to dst in constant memory; Close writes the final
// chunk and must be called.
func (c *Client) NewWriter(ctx context.Context, dst io.Writer, keyName string, kc kms.Context) (io.WriteCloser, error) {
	return envelope.NewWriter(ctx, c.keys, dst, keyName, kc, nil)
}

// NewReader decrypts a stream made by NewWriter. It returns no plaintext of a chunk that does not
// authenticate, and reports truncation, extension and reordering as errors.
func (c *Client) NewReader(ctx context.Context, src io.Reader, kc kms.Context) (io.Reader, error) {
	return envelope.NewReader(ctx, c.keys, src, kc)
}

// NewReaderAt gives random access to a stream made by NewWriter, decrypting only the chunks that
// a read touches (for partial reads of large images).
func (c *Client) NewReaderAt(ctx context.Context, src io.ReaderAt, size int64, kc kms.Context) (*envelope.ReaderAt, error) {
	return envelope.NewReaderAt(ctx, c.keys, src, size, kc)
}
