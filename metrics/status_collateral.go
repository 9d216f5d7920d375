package metrics

import (
	"fmt"
	"io"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// CollateralStatus is the freshness of one item of collateral, for `trustctl status`.
type CollateralStatus struct {
	TEE, Platform, Item string
	Age                 time.Duration
	Failing             bool
}

func parseCollateral(fams map[string]*dto.MetricFamily) []CollateralStatus {
	failing := map[string]bool{}
	for _, m := range fams[NameCollateralFailing].GetMetric() {
		failing[label(m, "tee")+"\x00"+label(m, "platform")+"\x00"+label(m, "item")] = m.GetGauge().GetValue() != 0
	}
	var out []CollateralStatus
	for _, m := range fams[NameCollateralAge].GetMetric() {
		c := CollateralStatus{TEE: label(m, "tee"), Platform: label(m, "platform"), Item: label(m, "item"),
			Age: time.Duration(m.GetGauge().GetValue() * float64(time.Second)).Round(time.Second)}
		c.Failing = failing[c.TEE+"\x00"+c.Platform+"\x00"+c.Item]
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.TEE != b.TEE {
			return a.TEE < b.TEE
		}
		if a.Platform != b.Platform {
			return a.Platform < b.Platform
		}
		return a.Item < b.Item
	})
	return out
}

// printCollateral writes the collateral table (nothing when no verifier reports any).
func printCollateral(w io.Writer, cs []CollateralStatus) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "COLLATERAL")
	fmt.Fprintln(w, "TEE\tPLATFORM\tITEM\tAGE\tREFRESH")
	for _, c := range cs {
		r := "ok"
		if c.Failing {
			r = "FAILING (last good copy in use)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.TEE, c.Platform, c.Item, c.Age, r)
	}
}
