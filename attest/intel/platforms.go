package intel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Offline collateral for several platforms (issue 16): an imported collateral bundle holds one
// directory per FMSPC, root/{fmspc}/, each in the layout of a collateral directory.

// LoadPlatforms reads every root/{fmspc}/ directory as offline collateral for that FMSPC,
// replacing any earlier set. A missing root loads none. Errors name tee and the directory.
func (v *QuoteVerifier) LoadPlatforms(root, tee, wantID string) error {
	ents, err := os.ReadDir(root)
	if os.IsNotExist(err) {
		v.platforms.Store(nil)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s collateral: %w", tee, err)
	}
	m := map[string]*Offline{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		c, err := ReadDir(dir)
		if err != nil {
			return fmt.Errorf("%s collateral %s: %w", tee, dir, err)
		}
		info, _, _, err := ParseTCBInfo(c.TCBInfo)
		if err != nil {
			return fmt.Errorf("%s collateral %s: %w", tee, dir, &FileError{File: FileTCBInfo, Err: err})
		}
		fm := strings.ToLower(info.FMSPC)
		if wantID != "" && info.ID != wantID || fm != strings.ToLower(e.Name()) {
			return fmt.Errorf("%s collateral %s: %w", tee, dir, &FileError{File: FileTCBInfo, Err: fmt.Errorf("TCB info is for %s FMSPC %s", info.ID, fm)})
		}
		m[fm] = &Offline{raw: c, fmspc: fm}
	}
	v.platforms.Store(&m)
	return nil
}

// platform is the offline collateral loaded by LoadPlatforms for fmspc, or nil.
func (v *QuoteVerifier) platform(fmspc string) *Offline {
	m := v.platforms.Load()
	if m == nil {
		return nil
	}
	return (*m)[fmspc]
}
