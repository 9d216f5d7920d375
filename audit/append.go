package audit

import (
	"time"
	"unicode/utf8"
)

// MaxReason bounds Record.Reason: MarshalForAppend cuts a longer reason (an error message,
// which a hostile request may make long) rather than fail to record the decision.
const MaxReason = 4096

func truncateReason(s string) string {
	if len(s) <= MaxReason {
		return s
	}
	const mark = " [truncated]"
	cut := MaxReason - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// MarshalForAppend is Marshal after what every log does to a record it appends: a zero Time is
// set to now() and a Reason longer than MaxReason is cut. Every storage driver calls it, so
// that they accept and encode records alike.
func MarshalForAppend(r *Record, now func() time.Time) ([]byte, error) {
	if r != nil && (r.Time.IsZero() || len(r.Reason) > MaxReason) {
		c := *r
		if c.Time.IsZero() {
			c.Time = now()
		}
		c.Reason = truncateReason(c.Reason)
		r = &c
	}
	return Marshal(r)
}
