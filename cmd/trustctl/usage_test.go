package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// flagInUse matches a long flag as a usage line names it: --name.
var flagInUse = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)

// Every flag that a command's usage line or long help advertises exists on that command
// (`trustctl loadtest --help` once advertised a --dev flag it did not have).
func TestAdvertisedFlagsExist(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, m := range flagInUse.FindAllStringSubmatch(c.Use, -1) {
			if c.Flags().Lookup(m[1]) == nil && c.PersistentFlags().Lookup(m[1]) == nil && c.InheritedFlags().Lookup(m[1]) == nil {
				t.Errorf("%q: usage names --%s, which the command does not define", c.CommandPath(), m[1])
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := newRoot()
	walk(root)

	// The loadtest help names trustd's --dev only as trustd's flag, never as its own.
	lt, _, err := root.Find([]string{"loadtest"})
	if err != nil {
		t.Fatal(err)
	}
	if lt.Flags().Lookup("dev") != nil || strings.Contains(lt.Use, "--dev") {
		t.Errorf("loadtest advertises --dev: %q", lt.Use)
	}
}
