package attest

import (
	"fmt"
	"strconv"
	"strings"
)

// PCRClaim is the Claims.Measurements name of TPM PCR i (SHA-256 bank) for schemes whose evidence
// includes a TPM quote: "pcr7".
func PCRClaim(i uint32) string { return fmt.Sprintf("pcr%d", i) }

// PCRs returns the PCR values among c's measurements (named by PCRClaim), by index; nil if none.
func (c *Claims) PCRs() map[uint32]Hex {
	var out map[uint32]Hex
	for k, v := range c.Measurements {
		n, ok := strings.CutPrefix(k, "pcr")
		if !ok {
			continue
		}
		i, err := strconv.ParseUint(n, 10, 32)
		if err != nil || PCRClaim(uint32(i)) != k {
			continue
		}
		if out == nil {
			out = map[uint32]Hex{}
		}
		out[uint32(i)] = v
	}
	return out
}
