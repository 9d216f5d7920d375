package policies

import (
	"strings"
	"testing"
	"time"
)

func TestTCBRecoveryGrace(t *testing.T) {
	for _, tc := range []struct {
		grace string
		want  time.Duration
		err   string
	}{
		{"72h", 72 * time.Hour, ""},
		{"0s", 0, ""},
		{"720h", MaxTCBRecoveryGrace, ""},
		{"721h", 0, "tcbRecoveryGrace: 721h0m0s outside [0, 720h0m0s]"},
		{"-1h", 0, "outside"},
		{"3d", 0, "not a duration"},
		{"[1h]", 0, "want a"},
	} {
		b, err := Parse(map[string][]byte{"p.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: p}
spec:
  tee: [tdx]
  measurements: ["` + strings.Repeat("ab", 48) + `"]
  require:
    tcbRecoveryGrace: ` + tc.grace + `
  grants: {secrets: [s]}
`)})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("grace %s: %v, want an error containing %q", tc.grace, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("grace %s: %v", tc.grace, err)
		}
		if got := b.TCBRecoveryGrace("p"); got != tc.want {
			t.Errorf("grace %s: %v", tc.grace, got)
		}
		if got := b.TCBRecoveryGrace("gone"); got != 0 {
			t.Errorf("unknown policy: %v", got)
		}
	}
}
