package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
)

// Study describes a synthetic multi-frame MR series in a DICOM-like layout: a Part 10 preamble
// and "DICM" prefix, a few explicit-VR little-endian elements, then the pixel data of Frames
// frames of Rows x Columns 16-bit samples. It stands in for the large imaging files of a
// teleconsultation; the samples are deterministic noise, never patient data.
type Study struct {
	Rows, Columns, Frames int
	Seed                  uint64
}

// StudyForSize returns a 512x512 study of at least minBytes bytes.
func StudyForSize(minBytes int64, seed uint64) Study {
	s := Study{Rows: 512, Columns: 512, Seed: seed}
	s.Frames = int((minBytes + int64(s.FrameSize()) - 1) / int64(s.FrameSize()))
	return s
}

// FrameSize is the size of one frame's pixel data.
func (s Study) FrameSize() int { return s.Rows * s.Columns * 2 }

// Size is the size of the whole file.
func (s Study) Size() int64 { return int64(len(s.header())) + int64(s.Frames)*int64(s.FrameSize()) }

// FrameOffset is where frame i starts in the file: what a viewer asks for with a Range request.
func (s Study) FrameOffset(i int) int64 {
	return int64(len(s.header())) + int64(i)*int64(s.FrameSize())
}

func element(b []byte, group, elem uint16, vr string, value []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, group)
	b = binary.LittleEndian.AppendUint16(b, elem)
	b = append(b, vr...)
	switch vr {
	case "OW", "OB":
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(value)))
	default:
		b = binary.LittleEndian.AppendUint16(b, uint16(len(value)))
	}
	return append(b, value...)
}

func (s Study) header() []byte {
	b := make([]byte, 128, 512)
	b = append(b, "DICM"...)
	b = element(b, 0x0002, 0x0010, "UI", []byte("1.2.840.10008.1.2.1\x00")) // explicit VR little endian
	b = element(b, 0x0008, 0x0060, "CS", []byte("MR"))
	b = element(b, 0x0010, 0x0020, "LO", []byte("SYNTHETIC-0000"))
	b = element(b, 0x0028, 0x0008, "IS", fmt.Appendf(nil, "%-8d", s.Frames))
	b = element(b, 0x0028, 0x0010, "US", binary.LittleEndian.AppendUint16(nil, uint16(s.Rows)))
	b = element(b, 0x0028, 0x0011, "US", binary.LittleEndian.AppendUint16(nil, uint16(s.Columns)))
	b = element(b, 0x0028, 0x0100, "US", binary.LittleEndian.AppendUint16(nil, 16))
	// The pixel data element's header; its value, the frames, follows.
	b = binary.LittleEndian.AppendUint16(b, 0x7fe0)
	b = binary.LittleEndian.AppendUint16(b, 0x0010)
	b = append(b, "OW\x00\x00"...)
	return binary.LittleEndian.AppendUint32(b, uint32(min(int64(s.Frames)*int64(s.FrameSize()), 0xfffffffe)))
}

// Frame returns the pixel data of frame i.
func (s Study) Frame(i int) []byte {
	f := make([]byte, s.FrameSize())
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], s.Seed)
	binary.LittleEndian.PutUint64(seed[8:], uint64(i))
	rand.NewChaCha8(seed).Read(f)
	return f
}

// WriteTo writes the whole study, frame by frame, so memory stays at one frame.
func (s Study) WriteTo(w io.Writer) (int64, error) {
	if s.Rows <= 0 || s.Columns <= 0 || s.Frames <= 0 || s.Rows > 4096 || s.Columns > 4096 {
		return 0, errors.New("study: rows, columns and frames must be positive, at most 4096x4096")
	}
	n, err := w.Write(s.header())
	total := int64(n)
	for i := 0; err == nil && i < s.Frames; i++ {
		n, err = w.Write(s.Frame(i))
		total += int64(n)
	}
	return total, err
}
