package eventlog

import (
	"encoding/hex"
	"slices"
	"strings"
)

// Digests flattens the components into the names that attest.Claims.Components and policies
// use, each mapped to the digest its event extended into the replayed register:
//
//   - kernel, initrd: as GRUB or the Linux EFI stub measured them;
//   - cmdline: the command line GRUB measured, or else the load options the EFI stub measured;
//   - shim, grub, systemd-boot: the first EFI application of that kind;
//   - uki.<section>: a PE section systemd-stub measured (uki.linux, uki.cmdline ...).
//
// Components whose digest is not hex (none that Replay produces) are left out.
func (c *Components) Digests() map[string][]byte {
	out := map[string][]byte{}
	put := func(name string, m *Measurement) {
		if m == nil {
			return
		}
		if _, dup := out[name]; dup {
			return
		}
		if d, err := hex.DecodeString(m.Digest); err == nil {
			out[name] = d
		}
	}
	put("kernel", c.Kernel)
	put("initrd", c.Initrd)
	put("cmdline", c.Cmdline)
	put("cmdline", c.LoadOptions)
	for i := range c.Bootloaders {
		if k := c.Bootloaders[i].Kind; k == "shim" || k == "grub" || k == "systemd-boot" {
			put(k, &c.Bootloaders[i])
		}
	}
	for i := range c.UKISections {
		put("uki."+strings.TrimPrefix(c.UKISections[i].Kind, "."), &c.UKISections[i])
	}
	return out
}

// ComponentRegisters names the registers the component name (a Digests key) is drawn from, as
// attest.Claims measurement names: pcrN of a TPM log, rtmrN of a CCEL (the tables in
// components.go, lower case). Nothing
// authenticates an event's label, and the guest can extend these registers after boot: root in
// an unapproved guest can append an event with an approved digest and relabel the real one, and
// the log still replays. A component is exact only where the registers it comes from are pinned
// as well; a policy names both. Unknown names have none.
func ComponentRegisters(name string) []string {
	var regs []string
	switch {
	case name == "shim" || name == "grub" || name == "systemd-boot":
		regs = bootAppRegs
	case name == "kernel" || name == "initrd":
		regs = grubFileRegs // GRUB's file events and the EFI stub's initrd tag
	case name == "cmdline":
		regs = slices.Concat(grubTextRegs, grubFileRegs) // GRUB's text, or the EFI stub's load options
	case strings.HasPrefix(name, "uki."):
		regs = ukiRegs
	}
	var claims []string
	for _, r := range regs {
		if c := strings.ToLower(r); !slices.Contains(claims, c) {
			claims = append(claims, c)
		}
	}
	return claims
}
