package intel

import (
	"path/filepath"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// PCSConfig is the configuration section that TDX and SGX verification share in trustd (the
// `verifiers: tdx:` and `verifiers: sgx:` sections).
type PCSConfig struct {
	// Disable is the deprecated `disabled: true`: remove the section instead.
	Disable bool `yaml:"disabled"`
	// Offline never touches the network: collateral comes from CollateralDir only.
	Offline bool `yaml:"offline"`
	// PCSURL is Intel's PCS or a caching service (PCCS); empty means Intel's PCS.
	PCSURL        string `yaml:"pcs_url"`
	CollateralDir string `yaml:"collateral_dir"`
	// CacheDir keeps fetched collateral until its next update; default DataDir/collateral/<tee>.
	CacheDir string `yaml:"cache_dir"`
	// CollateralRefresh re-fetches online collateral this often whatever its nextUpdate
	// (default 1h); CollateralMaxAge is how long a failed refresh keeps the last good set before
	// verification fails closed (default 24h); MinTCBEvaluationDataNumber refuses older TCB
	// info and QE identities.
	CollateralRefresh          time.Duration `yaml:"collateral_refresh"`
	CollateralMaxAge           time.Duration `yaml:"collateral_max_age"`
	MinTCBEvaluationDataNumber int           `yaml:"min_tcb_evaluation_data_number"`
}

// FreshnessFor is Freshness with the high-water mark and the collateral store trustd shares
// between replicas.
func (c *PCSConfig) FreshnessFor(d attest.Deps) Freshness {
	f := c.Freshness()
	f.HighWater = d.HighWater
	f.Store = d.CollateralStore
	return f
}

// Freshness is the section's collateral freshness settings.
func (c *PCSConfig) Freshness() Freshness {
	return Freshness{RefreshInterval: c.CollateralRefresh, MaxAge: c.CollateralMaxAge, MinTCBEvaluationDataNumber: c.MinTCBEvaluationDataNumber}
}

// Disabled implements attest.SchemeConfig.
func (c *PCSConfig) Disabled() bool { return c.Disable }

// URL is the PCS to fetch from: "" when offline, DefaultPCSURL when unset.
func (c *PCSConfig) URL() string {
	switch {
	case c.Offline:
		return ""
	case c.PCSURL == "":
		return DefaultPCSURL
	}
	return c.PCSURL
}

// Cache is CacheDir, or dataDir/collateral/sub when unset and dataDir is not empty.
func (c *PCSConfig) Cache(dataDir, sub string) string {
	if c.CacheDir != "" || dataDir == "" {
		return c.CacheDir
	}
	return filepath.Join(dataDir, "collateral", sub)
}

// CollateralFlag is the trustctl evidence verify option of TDX and SGX.
var CollateralFlag = attest.FileFlag{Name: "collateral", Usage: "TDX/SGX: offline collateral directory (trustctl collateral fetch)"}

// FileURL is the PCS that trustctl evidence verify may fetch from: Intel's with --online.
func FileURL(o attest.FileOptions) string {
	if o.Online {
		return DefaultPCSURL
	}
	return ""
}
