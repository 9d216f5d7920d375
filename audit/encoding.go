package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxRecordSize is the largest encoded record: a tlog-tiles entry bundle prefixes each entry
// with a 16-bit length.
const MaxRecordSize = 1<<16 - 1

// ErrInvalidRecord is wrapped by the errors of Marshal, Append and ParseRecord for a record that
// is not acceptable; the service should treat it as an internal error (it built the record).
var ErrInvalidRecord = errors.New("invalid audit record")

// Marshal returns the canonical encoding of r, the bytes that become a leaf of the log.
//
// The canonical encoding is the JSON object that encoding/json produces for Record with HTML
// escaping off and no insignificant whitespace: members in the order Record declares them,
// empty optional members omitted, map members sorted by key, strings as encoding/json escapes
// them, and "time" in UTC as RFC 3339 with as many fractional-second digits as needed (none for
// whole seconds), and so "until" when set. Time must be set; Event and Verdict must be
// non-empty and Verdict one of VerdictAllow, VerdictDeny and VerdictError.
func Marshal(r *Record) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalidRecord)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	c := *r
	c.Time = r.Time.UTC().Round(0)
	if !r.Until.IsZero() {
		c.Until = r.Until.UTC().Round(0)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, more than %d", ErrInvalidRecord, len(b), MaxRecordSize)
	}
	return b, nil
}

func (r *Record) validate() error {
	switch {
	case r.Time.IsZero():
		return fmt.Errorf("%w: time not set", ErrInvalidRecord)
	case r.Time.Year() < 1 || r.Time.Year() > 9999:
		return fmt.Errorf("%w: time %v outside years 1-9999", ErrInvalidRecord, r.Time.Year())
	case r.Event == "":
		return fmt.Errorf("%w: event empty", ErrInvalidRecord)
	case !r.Until.IsZero() && (r.Until.Year() < 1 || r.Until.Year() > 9999):
		return fmt.Errorf("%w: until %v outside years 1-9999", ErrInvalidRecord, r.Until.Year())
	}
	switch r.Verdict {
	case VerdictAllow, VerdictDeny, VerdictError:
	default:
		return fmt.Errorf("%w: verdict %q is not allow, deny or error", ErrInvalidRecord, r.Verdict)
	}
	return nil
}

// ParseRecord parses one canonical record strictly: unknown or duplicate members, trailing data
// and any encoding other than the canonical one (see Marshal) are errors.
func ParseRecord(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidRecord, len(b), MaxRecordSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the record", ErrInvalidRecord)
	}
	if r.Time.Location() != time.UTC || !r.Until.IsZero() && r.Until.Location() != time.UTC {
		return nil, fmt.Errorf("%w: time is not in UTC", ErrInvalidRecord)
	}
	// Canonical means the bytes are exactly what Marshal would write: this rejects duplicate
	// members, reordering, whitespace, non-minimal escapes and explicit empty members at once.
	c, err := Marshal(&r)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(c, b) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrInvalidRecord)
	}
	return &r, nil
}
