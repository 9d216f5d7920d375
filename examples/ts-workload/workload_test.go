// Package tsworkload runs the TypeScript workload (examples/ts-workload/src) against a real
// trustd in --dev mode: built from this repository, started on 127.0.0.1, with the simulated TEE.
package tsworkload

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTypeScriptWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real trustd and Node")
	}
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node not found: CI runs the TypeScript workload (install Node 20 or later)")
		}
		t.Skip("node not found: install Node 20 or later to run the TypeScript workload")
	}
	run(t, "bash", "../../scripts/ts-workload.sh")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	trustd, trustctl := filepath.Join(dir, "trustd"), filepath.Join(dir, "trustctl")
	run(t, "go", "build", "-o", trustd, "../../cmd/trustd")
	run(t, "go", "build", "-o", trustctl, "../../cmd/trustctl")
	run(t, trustctl, "keys", "create", "hello/records", "--data-dir", data, "--dev")
	put := exec.Command(trustctl, "secrets", "put", "hello/api-token", "--data-dir", data, "--dev")
	put.Stdin = strings.NewReader("ts-workload-secret")
	if out, err := put.CombinedOutput(); err != nil {
		t.Fatalf("secrets put: %v\n%s", err, out)
	}
	addr := startTrustd(t, trustd, data)

	out := run(t, "node", "dist/workload.js", "--addr", "http://"+addr)
	t.Logf("workload:\n%s", out)
	for _, want := range []string{"attested: verdict affirming, policy hello", "token: EAR tag:github.com,2023:veraison/ear",
		"secret hello/api-token: 18 bytes", "record encrypted and decrypted", "denied (HTTP 403): measurement", "ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("workload output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ts-workload-secret") {
		t.Error("the workload printed the secret")
	}

	// trustctl attest --dev --format json against the same trustd: both token forms.
	var att struct {
		Verdict string `json:"verdict"`
		CWT     string `json:"cwt"`
		JWT     string `json:"jwt"`
		Grants  []struct{ Kind, Name string }
	}
	js := run(t, trustctl, "--addr", addr, "attest", "--dev", "--measurement",
		"6d656469637573207472757374206578616d706c652068656c6c6f20696d616765207631000000000000000000000000", "--format", "json")
	if err := json.Unmarshal([]byte(js), &att); err != nil || att.Verdict != "affirming" || att.CWT == "" ||
		strings.ContainsAny(att.CWT, "+/=") || strings.Count(att.JWT, ".") != 2 || len(att.Grants) != 2 {
		t.Fatalf("trustctl attest --format json: %v\n%s", err, js)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func startTrustd(t *testing.T, bin, data string) string {
	t.Helper()
	cmd := exec.Command(bin, "--dev", "--data-dir", data, "--policy", "../../policies/examples/hello.yaml", "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addrc := make(chan string, 1)
	var log bytes.Buffer
	go func() {
		re := regexp.MustCompile(`msg="trustd serving" grpc=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	select {
	case a := <-addrc:
		return a
	case <-time.After(30 * time.Second):
		t.Fatalf("trustd did not start")
		return ""
	}
}
