package eventlog

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/go-eventlog/tcg"
)

// Measurement is one measured component: the register it went into, the event type, the digest
// the register was extended with, and what the event says it is.
type Measurement struct {
	Register    string `json:"register"`
	Event       string `json:"event"`
	Digest      string `json:"digest"`
	Kind        string `json:"kind,omitempty"`
	Description string `json:"description,omitempty"`
}

// Components are the claims drawn from a replayed log. Everything here comes from events whose
// digests were extended into the replayed registers; the descriptions are the events' own data
// (what the firmware or loader said it measured).
type Components struct {
	// Firmware: CRTM version and contents, platform firmware blobs, handoff tables, POST code.
	Firmware []Measurement `json:"firmware,omitempty"`
	// SecureBoot is the SecureBoot variable as measured (nil when the log does not record it).
	SecureBoot *bool `json:"secure_boot,omitempty"`
	// SecureBootVariables: PK, KEK, db, dbx and other measured UEFI variables.
	SecureBootVariables []Measurement `json:"secure_boot_variables,omitempty"`
	// Bootloaders: EFI applications in load order, kind "shim", "grub", "systemd-boot" or
	// "efi-application", description the file path of the image.
	Bootloaders []Measurement `json:"bootloaders,omitempty"`
	// Kernel and Initrd as measured by GRUB (file events) or the kernel's EFI stub (initrd tag).
	// Kernel, Initrd, Cmdline and LoadOptions are each the first such event: a later one was
	// extended by code that was already running.
	Kernel *Measurement `json:"kernel,omitempty"`
	Initrd *Measurement `json:"initrd,omitempty"`
	// Cmdline is the kernel command line GRUB measured (its text is in the log).
	Cmdline *Measurement `json:"cmdline,omitempty"`
	// LoadOptions is the kernel command line the Linux EFI stub measured: only its digest (of
	// the UTF-16 load options) is in the log.
	LoadOptions *Measurement `json:"load_options,omitempty"`
	// UKISections are the PE sections systemd-stub measured (kind is the section name).
	UKISections []Measurement `json:"uki_sections,omitempty"`
	// GrubCommands are the commands GRUB measured (kind "grub_cmd").
	GrubCommands []Measurement `json:"grub_commands,omitempty"`
	// Application are runtime events (TDX RTMR3: extended by the guest after boot).
	Application []Measurement `json:"application,omitempty"`
	// DuplicateSeparators names registers that carry more than one EV_SEPARATOR.
	DuplicateSeparators []string `json:"duplicate_separators,omitempty"`
}

// EV_EVENT_TAG identifiers of the Linux EFI stub.
const (
	tagLinuxInitrd      = 0x8F3B22EC
	tagLinuxLoadOptions = 0x8F3B22ED
)

// The registers each boot stage measures its components into (TCG PC Client PFP: PCR 4; GRUB:
// PCR 8 and 9; the Linux EFI stub: PCR 9; systemd-stub: PCR 11), and the RTMR a CCEL maps that
// PCR to (PCR 2 to 6 to RTMR1, 8 to 15 to RTMR2). Only the events of a register's owner are
// attested by it: a register the guest extends at will after boot (a resettable PCR such as 16
// or 23, which a quote may select alone, or TDX's RTMR3) holds whatever events root chooses, so
// an event there never becomes a bootloader, kernel, initrd, command line or UKI section.
var (
	bootAppRegs  = []string{"PCR4", "RTMR1"}
	grubTextRegs = []string{"PCR8", "RTMR2"}
	grubFileRegs = []string{"PCR9", "RTMR2"}
	ukiRegs      = []string{"PCR11", "RTMR2"}
)

var ukiSections = map[string]bool{
	".linux": true, ".initrd": true, ".cmdline": true, ".osrel": true, ".uname": true,
	".splash": true, ".dtb": true, ".dtbauto": true, ".pcrsig": true, ".pcrpkey": true,
	".sbat": true, ".ucode": true, ".profile": true, ".hwids": true, ".efifw": true,
}

// components draws the claims from the events of the given bank; keep, if not nil, says which
// registers count (the others' events yield nothing).
func components(events []Event, hash crypto.Hash, regName func(uint32) string, keep func(index uint32) bool) Components {
	var c Components
	separators := map[uint32]int{}
	var pendingSection string
	var pendingSectionReg uint32
	separator := func(index uint32, reg string) {
		separators[index]++
		if separators[index] == 2 {
			c.DuplicateSeparators = append(c.DuplicateSeparators, reg)
		}
	}
	for _, e := range events {
		if e.Type == evNoAction {
			continue
		}
		d, ok := e.Digests[hash]
		if !ok {
			continue
		}
		if keep != nil && !keep(e.Index) {
			pendingSection = "" // a section's name and contents are consecutive events
			continue
		}
		m := Measurement{Register: regName(e.Index), Event: e.Type.String(), Digest: hex.EncodeToString(d)}
		if m.Register == "RTMR3" {
			// The application register: the guest extends it after boot, with whatever event
			// data it likes, so its events are application measurements, never boot components.
			pendingSection = ""
			m.Description = printable(e.Data)
			switch e.Type {
			case tcg.Ipl:
				m.Description = decodeText(e.Data)
			case tcg.Separator:
				separator(e.Index, m.Register)
			}
			c.Application = append(c.Application, m)
			continue
		}
		if pendingSection != "" && e.Index == pendingSectionReg {
			m.Kind = pendingSection
			c.UKISections = append(c.UKISections, m)
			pendingSection = ""
			continue
		}
		pendingSection = ""
		switch e.Type {
		case tcg.Separator:
			separator(e.Index, m.Register)
		case tcg.SCRTMVersion, tcg.SCRTMContents, tcg.PostCode, tcg.EFIPlatformFirmwareBlob,
			tcg.EFIHandoffTables, 0x8000000A, 0x8000000B, tcg.PlatformConfigFlags, tcg.NonhostInfo:
			m.Description = printable(e.Data)
			c.Firmware = append(c.Firmware, m)
		case tcg.EFIVariableDriverConfig, tcg.EFIVariableAuthority:
			v, err := tcg.ParseUEFIVariableData(bytes.NewReader(e.Data))
			if err != nil {
				m.Description = "unparsed UEFI variable"
				c.SecureBootVariables = append(c.SecureBootVariables, m)
				continue
			}
			m.Description = v.VarName()
			if e.Type == tcg.EFIVariableDriverConfig && m.Description == "SecureBoot" && len(v.VariableData) >= 1 {
				on := v.VariableData[0] == 1
				c.SecureBoot = &on
			}
			c.SecureBootVariables = append(c.SecureBootVariables, m)
		case tcg.EFIBootServicesApplication:
			if !slices.Contains(bootAppRegs, m.Register) {
				break
			}
			m.Description = imagePath(e.Data)
			m.Kind = loaderKind(m.Description)
			c.Bootloaders = append(c.Bootloaders, m)
		case tcg.EventTag:
			if !slices.Contains(grubFileRegs, m.Register) {
				break
			}
			t, err := tcg.ParseTaggedEventData(e.Data)
			if err != nil {
				continue
			}
			switch t.ID {
			case tagLinuxLoadOptions:
				m.Kind = "linux-efi-stub"
				if c.LoadOptions == nil {
					c.LoadOptions = &m
				}
			case tagLinuxInitrd:
				// The stub measures the initrd it loads; a GRUB file event, which also names
				// the file, takes precedence.
				m.Kind = "linux-efi-stub"
				if c.Initrd == nil {
					c.Initrd = &m
				}
			}
		case tcg.Ipl:
			text := decodeText(e.Data)
			grubText, grubFile := slices.Contains(grubTextRegs, m.Register), slices.Contains(grubFileRegs, m.Register)
			switch {
			case grubText && strings.HasPrefix(text, "kernel_cmdline: "):
				m.Description = strings.TrimPrefix(text, "kernel_cmdline: ")
				m.Kind = "grub"
				if c.Cmdline == nil {
					c.Cmdline = &m
				}
			case grubText && strings.HasPrefix(text, "grub_cmd: "):
				m.Description = strings.TrimPrefix(text, "grub_cmd: ")
				m.Kind = "grub_cmd"
				c.GrubCommands = append(c.GrubCommands, m)
			case ukiSections[text] && slices.Contains(ukiRegs, m.Register):
				// systemd-stub measures a section's name, then its contents.
				pendingSection, pendingSectionReg = text, e.Index
			case grubFile && isKernelPath(text):
				m.Description, m.Kind = text, "grub"
				if c.Kernel == nil {
					c.Kernel = &m
				}
			case grubFile && isInitrdPath(text):
				m.Description, m.Kind = text, "grub"
				if c.Initrd == nil {
					c.Initrd = &m
				}
			}
			continue
		}
	}
	return c
}

func imagePath(data []byte) string {
	img, err := tcg.ParseEFIImageLoad(bytes.NewReader(data))
	if err != nil {
		return ""
	}
	path, err := img.DevicePath()
	if err != nil {
		return ""
	}
	for _, el := range path {
		if el.Type == 4 && el.Subtype == 4 { // media device path, file path
			return decodeText(el.Data)
		}
	}
	return ""
}

func loaderKind(path string) string {
	p := strings.ToLower(path)
	switch {
	case strings.Contains(p, "shim"):
		return "shim"
	case strings.Contains(p, "grub"):
		return "grub"
	case strings.Contains(p, "systemd-boot"):
		return "systemd-boot"
	case strings.Contains(p, "vmlinuz") || strings.HasSuffix(p, ".efi") && strings.Contains(p, "linux"):
		return "kernel"
	}
	return "efi-application"
}

func isKernelPath(s string) bool {
	b := s[strings.LastIndexByte(s, '/')+1:]
	return strings.HasPrefix(s, "/") && (strings.HasPrefix(b, "vmlinuz") || strings.HasPrefix(b, "bzImage") || strings.HasPrefix(b, "kernel"))
}

func isInitrdPath(s string) bool {
	b := s[strings.LastIndexByte(s, '/')+1:]
	return strings.HasPrefix(s, "/") && (strings.HasPrefix(b, "initrd") || strings.HasPrefix(b, "initramfs"))
}

// decodeText reads event text that is UTF-8 or UTF-16LE, dropping trailing NULs.
func decodeText(b []byte) string {
	if len(b) >= 4 && len(b)%2 == 0 && b[1] == 0 && b[3] == 0 {
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return printable([]byte(string(utf16.Decode(u))))
	}
	return printable(b)
}

// printable returns b as text when it is valid UTF-8 without control characters (trailing NULs
// dropped), and "" otherwise.
func printable(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 || !utf8.Valid(b) {
		return ""
	}
	for _, r := range string(b) {
		if r < 0x20 && r != '\t' {
			return ""
		}
	}
	return string(b)
}
