package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"trustctl": main,
	})
}

// TestScripts runs the CLI behaviour scripts in testdata/script: commands, their expected output
// and their expected failures.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("MEDICUS_MASTER_KEY", "")
			root, err := filepath.Abs("../..")
			if err != nil {
				return err
			}
			env.Setenv("REPO", root)
			return os.Setenv("NO_COLOR", "1")
		},
	})
}
