package auditor_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/tlog"
)

func FuzzParseInclusionProof(f *testing.F) {
	dir, vkey := buildLog(f, 300)
	for _, idx := range []uint64{0, 299} {
		ip, err := auditor.Prove(context.Background(), auditor.ProveOptions{Source: auditor.Source{Log: dir, Key: vkey}, Index: idx})
		if err != nil {
			f.Fatal(err)
		}
		b, err := json.MarshalIndent(ip, "", "  ")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, err := auditor.ParseInclusionProof(b)
		if err == nil && len(ip.Root) != tlog.HashSize {
			t.Fatal("accepted a bad root")
		}
	})
}
