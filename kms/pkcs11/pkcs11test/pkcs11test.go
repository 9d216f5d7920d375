// Package pkcs11test runs a real software HSM, SoftHSM2, for tests: a token directory of its own
// in a temporary directory, tokens initialized with softhsm2-util, and PIN files.
//
// SoftHSM2 reads its configuration (SOFTHSM2_CONF) once per process when the module is
// initialized, so one directory serves the whole test binary: call Main from TestMain. Without
// softhsm2 installed the tests skip with a message, except under CI=true, where they fail.
package pkcs11test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/medicus-cloud/trust/kms/pkcs11"
)

// Environment variables that override where SoftHSM2 is found.
const (
	ModuleEnv = "MEDICUS_SOFTHSM_MODULE" // default: the Debian path
	UtilEnv   = "MEDICUS_SOFTHSM_UTIL"   // default: softhsm2-util on PATH
)

// DefaultModule is where Debian's softhsm2 package installs the module.
const DefaultModule = "/usr/lib/softhsm/libsofthsm2.so"

// PIN and SOPIN of every token made here.
const (
	PIN   = "3141-5926"
	SOPIN = "2718-2818"
)

// HSM is the process's SoftHSM2 token directory.
type HSM struct {
	Module string
	Dir    string
	util   string
	seq    atomic.Uint64
	mu     sync.Mutex
	tokens map[string]string // label -> directory
}

var (
	once    sync.Once
	hsm     *HSM
	hsmErr  error
	inMain  atomic.Bool
	skipMsg string
)

// Main runs a package's tests and removes the token directory afterwards:
//
//	func TestMain(m *testing.M) { pkcs11test.Main(m) }
func Main(m *testing.M) {
	inMain.Store(true)
	code := m.Run()
	if hsm != nil {
		os.RemoveAll(hsm.Dir)
	}
	os.Exit(code)
}

// Start returns the process's HSM, creating its directory on first use, or skips the test
// (fails it under CI=true) when SoftHSM2 is not installed.
func Start(t testing.TB) *HSM {
	t.Helper()
	if !inMain.Load() {
		t.Fatal("pkcs11test: Start needs TestMain to call pkcs11test.Main")
	}
	once.Do(func() { hsm, hsmErr = setup() })
	if skipMsg != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(skipMsg)
		}
		t.Skip(skipMsg)
	}
	if hsmErr != nil {
		t.Fatalf("pkcs11test: %v", hsmErr)
	}
	return hsm
}

func setup() (*HSM, error) {
	module := os.Getenv(ModuleEnv)
	if module == "" {
		module = DefaultModule
	}
	util := os.Getenv(UtilEnv)
	if util == "" {
		util = "softhsm2-util"
	}
	path, err := exec.LookPath(util)
	if _, serr := os.Stat(module); err != nil || serr != nil {
		skipMsg = fmt.Sprintf("pkcs11test: SoftHSM2 not installed (module %s, %s); apt-get install softhsm2 or run scripts/softhsm-test.sh", module, util)
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "pkcs11test-")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", filepath.Join(dir, "tokens"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	// The module in this process reads it at initialization.
	os.Setenv("SOFTHSM2_CONF", conf)
	h := &HSM{Module: module, Dir: dir, util: path, tokens: map[string]string{}}
	if err := os.WriteFile(h.PINFile(), []byte(PIN+"\n"), 0o600); err != nil {
		return nil, err
	}
	return h, nil
}

// PINFile holds the tokens' PIN.
func (h *HSM) PINFile() string { return filepath.Join(h.Dir, "user.pin") }

// InitToken initializes a token with the given label, unless it exists already. Initialize
// every token a test binary needs before its first store opens: the module sees the tokens
// that exist when it initializes.
func (h *HSM) InitToken(t testing.TB, label string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tokens[label] != "" {
		return
	}
	before := h.tokenDirs()
	h.softhsm(t, "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SOPIN)
	for d := range h.tokenDirs() {
		if !before[d] {
			h.tokens[label] = d
		}
	}
	if h.tokens[label] == "" {
		t.Fatalf("pkcs11test: no token directory appeared for %q", label)
	}
}

func (h *HSM) tokenDirs() map[string]bool {
	out := map[string]bool{}
	ents, _ := os.ReadDir(filepath.Join(h.Dir, "tokens"))
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out
}

// RemoveToken takes a token's files away, as pulling out a smart card would, and returns the
// function that puts them back.
func (h *HSM) RemoveToken(t testing.TB, label string) (reinsert func()) {
	t.Helper()
	h.mu.Lock()
	d := filepath.Join(h.Dir, "tokens", h.tokens[label])
	h.mu.Unlock()
	if err := os.Rename(d, d+".removed"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Rename(d+".removed", d); err != nil {
			t.Fatal(err)
		}
	}
}

func (h *HSM) softhsm(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command(h.util, args...)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+filepath.Join(h.Dir, "softhsm2.conf"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11test: softhsm2-util %s: %v\n%s", strings.Join(args[:1], " "), err, out)
	}
}

// Config returns a store configuration for the token with a label prefix of its own, so
// stores sharing a token never see each other's keys.
func (h *HSM) Config(t testing.TB, token string) pkcs11.Config {
	t.Helper()
	return pkcs11.Config{
		Module:      h.Module,
		Token:       token,
		PINFile:     h.PINFile(),
		LabelPrefix: fmt.Sprintf("t%d", h.seq.Add(1)),
	}
}
