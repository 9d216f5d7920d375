package eventlog

import (
	"encoding/hex"
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
