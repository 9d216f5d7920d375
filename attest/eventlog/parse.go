package eventlog

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-eventlog/register"
	"github.com/google/go-eventlog/tcg"
)

// Padding is the kind of fill found after the last event.
type Padding string

// Padding kinds.
const (
	PaddingNone Padding = ""
	PaddingFF   Padding = "0xff"
	PaddingZero Padding = "0x00"
)

// Event is one parsed log event.
type Event struct {
	// Seq is the position of the event in the log, counting from 0 after the Spec ID event.
	Seq int
	// Index is the raw register index: a PCR number (TPM) or a CC MR index (CCEL: 1..4 are
	// RTMR0..3).
	Index uint32
	Type  tcg.EventType
	// Digests holds one digest per algorithm the event carries.
	Digests map[crypto.Hash][]byte
	Data    []byte
}

// Log is a parsed, not yet replayed event log.
type Log struct {
	Events []Event
	// Algs are the digest algorithms the log declares (SHA-1 alone for a TPM 1.2 format log).
	Algs []crypto.Hash
	// Padding is what followed the last event; PaddingBytes its length.
	Padding      Padding
	PaddingBytes int
}

const (
	specIDSignature = "Spec ID Event03\x00"
	evNoAction      = 0x03
	maxEvents       = 1 << 16
)

// Parse parses a TCG event log in the crypto-agile format (TPM 2.0, CCEL) or the SHA-1 format
// (TPM 1.2), stopping at padding as the package documentation describes.
func Parse(raw []byte) (*Log, error) {
	end, pad, err := frame(raw)
	if err != nil {
		return nil, err
	}
	el, err := tcg.ParseEventLog(raw[:end], tcg.ParseOpts{})
	if err != nil {
		return nil, fmt.Errorf("eventlog: %w", err)
	}
	log := &Log{Padding: pad, PaddingBytes: len(raw) - end}
	var perAlg [][]tcg.Event
	for _, a := range el.Algs {
		log.Algs = append(log.Algs, a.CryptoHash())
		perAlg = append(perAlg, el.Events(a))
	}
	if len(perAlg) == 0 {
		return nil, errors.New("eventlog: log declares no digest algorithm")
	}
	for i, e := range perAlg[0] {
		ev := Event{Seq: i, Index: uint32(e.Index), Type: e.Type, Data: e.Data, Digests: map[crypto.Hash][]byte{}}
		for j, a := range log.Algs {
			if d := perAlg[j][i].Digest; d != nil {
				ev.Digests[a] = d
			}
		}
		log.Events = append(log.Events, ev)
	}
	return log, nil
}

// frame walks the event framing to find where the events end, so that padding is recognised
// and anything else after the events is refused with its offset.
func frame(raw []byte) (end int, pad Padding, err error) {
	// The first event is always in the SHA-1 format: index, type, 20-byte digest, size, data.
	if len(raw) < 32 {
		return 0, "", fmt.Errorf("eventlog: %d bytes is too short for a first event", len(raw))
	}
	size := binary.LittleEndian.Uint32(raw[28:32])
	if uint64(size) > uint64(len(raw)-32) {
		return 0, "", fmt.Errorf("eventlog: first event at offset 0 is truncated")
	}
	first := raw[32 : 32+int(size)]
	off := 32 + int(size)
	typ := binary.LittleEndian.Uint32(raw[4:8])
	sizes := map[uint16]int{}
	agile := typ == evNoAction && bytes.HasPrefix(first, []byte(specIDSignature))
	if agile {
		if sizes, err = specIDSizes(first); err != nil {
			return 0, "", err
		}
	}
	for n := 0; off < len(raw); n++ {
		if p := padding(raw[off:]); p != PaddingNone {
			return off, p, nil
		}
		if n >= maxEvents {
			return 0, "", fmt.Errorf("eventlog: more than %d events", maxEvents)
		}
		next, err := frameEvent(raw, off, agile, sizes)
		if err != nil {
			return 0, "", err
		}
		off = next
	}
	return off, PaddingNone, nil
}

var (
	padFF   = bytes.Repeat([]byte{0xff}, 4096)
	padZero = make([]byte, 4096)
)

func padding(rest []byte) Padding {
	if len(rest) == 0 {
		return PaddingNone
	}
	b := rest[0]
	if b != 0 && b != 0xff {
		return PaddingNone
	}
	// Compare block by block (bytes.Equal is vectorised): a log area is mostly padding.
	blk := padFF
	if b == 0 {
		blk = padZero
	}
	for len(rest) > 0 {
		n := min(len(rest), len(blk))
		if !bytes.Equal(rest[:n], blk[:n]) {
			return PaddingNone
		}
		rest = rest[n:]
	}
	if b == 0 {
		return PaddingZero
	}
	return PaddingFF
}

func frameEvent(raw []byte, off int, agile bool, sizes map[uint16]int) (int, error) {
	rest := raw[off:]
	trunc := fmt.Errorf("eventlog: event at offset %d is truncated or malformed", off)
	if !agile {
		if len(rest) < 32 {
			return 0, trunc
		}
		size := binary.LittleEndian.Uint32(rest[28:32])
		if uint64(size) > uint64(len(rest)-32) {
			return 0, trunc
		}
		return off + 32 + int(size), nil
	}
	if len(rest) < 12 {
		return 0, trunc
	}
	count := binary.LittleEndian.Uint32(rest[8:12])
	if count == 0 || int(count) > len(sizes) {
		return 0, fmt.Errorf("eventlog: event at offset %d carries %d digests, the log declares %d algorithms", off, count, len(sizes))
	}
	p := 12
	for i := 0; i < int(count); i++ {
		if len(rest) < p+2 {
			return 0, trunc
		}
		alg := binary.LittleEndian.Uint16(rest[p:])
		n, ok := sizes[alg]
		if !ok {
			return 0, fmt.Errorf("eventlog: event at offset %d uses undeclared digest algorithm %#x", off, alg)
		}
		p += 2 + n
	}
	if len(rest) < p+4 {
		return 0, trunc
	}
	size := binary.LittleEndian.Uint32(rest[p:])
	p += 4
	if uint64(size) > uint64(len(rest)-p) {
		return 0, trunc
	}
	return off + p + int(size), nil
}

// specIDSizes reads the digest sizes of TCG_EfiSpecIDEvent: signature[16], platformClass u32,
// spec version u8 x3, uintnSize u8, numberOfAlgorithms u32, {algID u16, digestSize u16}...
func specIDSizes(b []byte) (map[uint16]int, error) {
	if len(b) < 28 {
		return nil, errors.New("eventlog: Spec ID event is truncated")
	}
	n := binary.LittleEndian.Uint32(b[24:28])
	if n == 0 || n > 16 || len(b) < 28+4*int(n) {
		return nil, fmt.Errorf("eventlog: Spec ID event declares %d algorithms in %d bytes", n, len(b))
	}
	sizes := map[uint16]int{}
	for i := 0; i < int(n); i++ {
		alg := binary.LittleEndian.Uint16(b[28+4*i:])
		size := int(binary.LittleEndian.Uint16(b[30+4*i:]))
		if want, known := knownSizes[alg]; known && size != want {
			return nil, fmt.Errorf("eventlog: Spec ID event gives algorithm %#x size %d, want %d", alg, size, want)
		}
		if size == 0 || size > 64 {
			return nil, fmt.Errorf("eventlog: Spec ID event gives algorithm %#x size %d", alg, size)
		}
		sizes[alg] = size
	}
	return sizes, nil
}

var knownSizes = map[uint16]int{
	uint16(register.HashSHA1):   20,
	uint16(register.HashSHA256): 32,
	uint16(register.HashSHA384): 48,
	0x000D:                      64, // SHA-512
}
