package eventlog

import "errors"

var errShort = errors.New("eventlog: log is shorter than its Spec ID event")

// Spans returns the byte range [start, end) of every event of a crypto-agile log after its Spec
// ID event, in log order (the order of Log.Events), for tools that excerpt or edit logs.
func Spans(raw []byte) ([][2]int, error) {
	end, _, err := frame(raw)
	if err != nil {
		return nil, err
	}
	if len(raw) < 32 {
		return nil, errShort
	}
	idLen := int(raw[28]) | int(raw[29])<<8
	if 32+idLen > end {
		return nil, errShort
	}
	sizes, err := specIDSizes(raw[32 : 32+idLen])
	if err != nil {
		return nil, err
	}
	var out [][2]int
	for off := 32 + idLen; off < end; {
		next, err := frameEvent(raw, off, true, sizes)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]int{off, next})
		off = next
	}
	return out, nil
}
