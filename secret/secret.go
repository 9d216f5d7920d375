// Package secret holds released key material in an opaque type, so that nothing secret crosses a
// package line as a bare []byte, lands in a log line or a JSON document by accident, or is
// compared in variable time.
package secret

import (
	"crypto/subtle"
	"log/slog"
)

// Bytes is secret key material. The zero value and nil are empty.
type Bytes struct {
	b []byte
}

// New takes ownership of b: the caller must not use b afterwards.
func New(b []byte) *Bytes { return &Bytes{b: b} }

// Reveal returns the secret itself. Callers use it at the point of cryptographic use only and
// must not keep or log it.
func (s *Bytes) Reveal() []byte {
	if s == nil {
		return nil
	}
	return s.b
}

// Len returns the length of the secret, which is not itself secret.
func (s *Bytes) Len() int {
	if s == nil {
		return 0
	}
	return len(s.b)
}

// Equal compares in constant time (for equal lengths).
func (s *Bytes) Equal(o *Bytes) bool {
	return subtle.ConstantTimeCompare(s.Reveal(), o.Reveal()) == 1
}

// Wipe overwrites the secret with zeros and empties it. Go may have copied the bytes elsewhere
// (for example during a slice growth); Wipe narrows the window, it cannot close it.
func (s *Bytes) Wipe() {
	if s == nil {
		return
	}
	clear(s.b)
	s.b = nil
}

// String never shows the secret.
func (s *Bytes) String() string { return "[redacted]" }

// GoString never shows the secret.
func (s *Bytes) GoString() string { return "secret.Bytes([redacted])" }

// MarshalText never shows the secret, so encoders print a placeholder.
func (s *Bytes) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// LogValue never shows the secret.
func (s *Bytes) LogValue() slog.Value { return slog.StringValue("[redacted]") }
