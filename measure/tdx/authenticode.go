package tdx

import (
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Authenticode computes the Authenticode SHA-384 digest of a PE/COFF image (Microsoft PE
// Format, "Calculating the PE Image Hash"): the headers without the CheckSum field and the
// Certificate Table directory entry, the sections in file order, then any data after them that
// is not the attribute certificate table. This is what UEFI LoadImage measures.
func Authenticode(img []byte) ([DigestSize]byte, error) {
	var out [DigestSize]byte
	bad := func(what string) ([DigestSize]byte, error) {
		return out, fmt.Errorf("tdx: kernel is not a PE image: %s", what)
	}
	if len(img) < 0x40 || img[0] != 'M' || img[1] != 'Z' {
		return bad("no MZ header")
	}
	pe := int(binary.LittleEndian.Uint32(img[0x3c:]))
	if pe < 0 || pe > len(img)-24 || string(img[pe:pe+4]) != "PE\x00\x00" {
		return bad("no PE signature")
	}
	coff := pe + 4
	nsec := int(binary.LittleEndian.Uint16(img[coff+2:]))
	optSize := int(binary.LittleEndian.Uint16(img[coff+16:]))
	opt := coff + 20
	if opt+optSize > len(img) || optSize < 96 {
		return bad("optional header overruns the file")
	}
	var dirs, nDirsOff int
	switch binary.LittleEndian.Uint16(img[opt:]) {
	case 0x10b:
		nDirsOff, dirs = opt+92, opt+96
	case 0x20b:
		nDirsOff, dirs = opt+108, opt+112
	default:
		return bad("unknown optional header magic")
	}
	if nDirsOff+4 > opt+optSize {
		return bad("optional header too short")
	}
	checksum := opt + 64
	sizeOfHeaders := int(binary.LittleEndian.Uint32(img[opt+60:]))
	if sizeOfHeaders > len(img) || sizeOfHeaders < opt+optSize {
		return bad("SizeOfHeaders out of range")
	}
	certDir := -1
	var certOff, certSize int
	if n := binary.LittleEndian.Uint32(img[nDirsOff:]); n > 4 && dirs+5*8 <= opt+optSize {
		certDir = dirs + 4*8
		certOff = int(binary.LittleEndian.Uint32(img[certDir:]))
		certSize = int(binary.LittleEndian.Uint32(img[certDir+4:]))
	}
	h := sha512.New384()
	h.Write(img[:checksum])
	if certDir < 0 {
		h.Write(img[checksum+4 : sizeOfHeaders])
	} else {
		h.Write(img[checksum+4 : certDir])
		h.Write(img[certDir+8 : sizeOfHeaders])
	}
	secs := opt + optSize
	if secs+40*nsec > len(img) {
		return bad("section table overruns the file")
	}
	type span struct{ off, size int }
	var spans []span
	for i := 0; i < nsec; i++ {
		s := img[secs+40*i:]
		size := int(binary.LittleEndian.Uint32(s[16:]))
		off := int(binary.LittleEndian.Uint32(s[20:]))
		if size == 0 {
			continue
		}
		if off < 0 || size < 0 || off > len(img) || size > len(img)-off {
			return bad(fmt.Sprintf("section %d overruns the file", i))
		}
		spans = append(spans, span{off, size})
	}
	slices.SortFunc(spans, func(a, b span) int { return a.off - b.off })
	hashed := sizeOfHeaders
	for _, s := range spans {
		h.Write(img[s.off : s.off+s.size])
		hashed += s.size
	}
	if hashed < len(img) {
		end := len(img)
		if certSize > 0 {
			if certOff < hashed || certOff+certSize > len(img) {
				return out, errors.New("tdx: kernel's certificate table lies outside the file's trailing data")
			}
			end = certOff
		}
		h.Write(img[hashed:end])
	}
	h.Sum(out[:0])
	return out, nil
}
