package detect

import (
	"os/exec"
	"strings"
	"testing"
)

// TestGuestLinksNoVerifier: the SDK (which links this package and so every guest provider)
// links no verifier: guest providers import only the leaf layout packages (tdxquote,
// sgxquote, azureabi), never attest/snp, attest/tdx, attest/intel, attest/sgx or attest/azure.
func TestGuestLinksNoVerifier(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/medicus-cloud/trust/sdk").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const m = "github.com/medicus-cloud/trust/attest/"
	verifiers := map[string]bool{m + "snp": true, m + "tdx": true, m + "intel": true, m + "sgx": true, m + "azure": true, m + "sim": true}
	for _, p := range strings.Fields(string(out)) {
		if verifiers[p] {
			t.Errorf("the SDK links the verifier %s", p)
		}
	}
}
