package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"gopkg.in/yaml.v3"

	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/kms/pkcs11"
	"github.com/medicus-cloud/trust/kms/route"
	"github.com/medicus-cloud/trust/kms/vault"
)

// keyStoreKinds are the key store backends trustd can open. A new backend is its package and
// one line here.
var keyStoreKinds = map[string]keyStoreKind{
	"local": kind(openLocal),
	"vault": kind(func(ctx context.Context, c *vault.Config, _ storeEnv) (route.Store, error) {
		return opened(vault.New(ctx, *c, vault.Options{}))
	}),
	"pkcs11": kind(func(ctx context.Context, c *pkcs11.Config, e storeEnv) (route.Store, error) {
		return opened(pkcs11.New(ctx, *c, pkcs11.Options{LookupEnv: e.LookupEnv}))
	}),
}

// StoreConfig is one named key store: its backend and that backend's section, for example
//
//	backend: vault
//	vault: {address: https://vault.uk-freiburg.de:8200, ...}
type StoreConfig struct {
	Backend string
	// Settings is the backend's section, decoded strictly into the backend's own type.
	Settings any
}

// LocalStoreConfig is the section of a store with backend local.
type LocalStoreConfig struct {
	// Path of the keyring file. Default DataDir/keyring. The master key is trustd's
	// (master_key_file or MEDICUS_MASTER_KEY).
	Path string `yaml:"path"`
}

// storeEnv is what a backend may take from trustd.
type storeEnv struct {
	d   *Daemon
	env Env
	// LookupEnv reads the process environment (a PIN in pkcs11.pin_env).
	LookupEnv func(string) (string, bool)
}

type keyStoreKind struct {
	newConfig func() any
	open      func(ctx context.Context, cfg any, e storeEnv) (route.Store, error)
}

// opened keeps a failed open's typed nil out of the interface.
func opened[S route.Store](s S, err error) (route.Store, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

// kind adapts a backend's typed opener.
func kind[C any](open func(ctx context.Context, c *C, e storeEnv) (route.Store, error)) keyStoreKind {
	return keyStoreKind{
		newConfig: func() any { return new(C) },
		open:      func(ctx context.Context, c any, e storeEnv) (route.Store, error) { return open(ctx, c.(*C), e) },
	}
}

// UnmarshalYAML reads backend and the section named after it, strictly.
func (s *StoreConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a key store is a mapping with backend and its section", n.Line)
	}
	var section *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Value == "backend":
			s.Backend = v.Value
		case section == nil:
			section = k
		default:
			return fmt.Errorf("line %d: field %s: a key store has backend and one section", k.Line, k.Value)
		}
	}
	kd, ok := keyStoreKinds[s.Backend]
	if !ok {
		return fmt.Errorf("line %d: backend %q, want one of %v", n.Line, s.Backend, kindNames())
	}
	s.Settings = kd.newConfig()
	if section == nil {
		return nil
	}
	if section.Value != s.Backend {
		return fmt.Errorf("line %d: section %s, but backend is %s", section.Line, section.Value, s.Backend)
	}
	// Decode the section strictly, as the rest of the file is.
	var val *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i] == section {
			val = n.Content[i+1]
		}
	}
	raw, err := yaml.Marshal(val)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(s.Settings); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s (line %d): %w", s.Backend, section.Line, err)
	}
	return nil
}

func kindNames() []string {
	var out []string
	for k := range keyStoreKinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DefaultStore is the name of the store that a single-store kms section becomes.
const DefaultStore = "default"

// keyStores returns the named stores, routes and default store, turning the single-store form
// (kms.backend, kms.vault) into one store named "default" that serves every tenant.
func (c *KMSConfig) keyStores() (stores map[string]StoreConfig, routes map[string]string, def string) {
	if len(c.Stores) > 0 {
		return c.Stores, c.Routes, c.Default
	}
	sc := StoreConfig{Backend: c.Backend, Settings: &LocalStoreConfig{}}
	if c.Backend == "vault" {
		sc.Settings = c.Vault
	}
	return map[string]StoreConfig{DefaultStore: sc}, nil, DefaultStore
}

// validate checks the named-store form; the single-store form is checked in Validate.
func (c *KMSConfig) validate() []error {
	var errs []error
	if len(c.Stores) == 0 {
		if len(c.Routes) > 0 || c.Default != "" {
			errs = append(errs, errors.New("kms.routes and kms.default: need kms.stores"))
		}
		return errs
	}
	if c.Backend != "" || c.Vault != nil {
		errs = append(errs, errors.New("kms.backend and kms.vault: the single-store form; with kms.stores, make it a store (backend: vault, vault: ...)"))
	}
	for _, name := range sortedStoreNames(c.Stores) {
		sc := c.Stores[name]
		if v, ok := sc.Settings.(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("kms.stores.%s.%s: %w", name, sc.Backend, err))
			}
		} else if sc.Settings == nil {
			errs = append(errs, fmt.Errorf("kms.stores.%s: no backend", name))
		}
	}
	// Routes themselves are checked by route.New when the stores open; the names at least
	// are checked here, so that a typo fails before any store is contacted.
	for tenant, store := range c.Routes {
		if _, ok := c.Stores[store]; !ok {
			errs = append(errs, fmt.Errorf("kms.routes.%s: no store named %q", tenant, store))
		}
	}
	if _, ok := c.Stores[c.Default]; c.Default != "" && !ok {
		errs = append(errs, fmt.Errorf("kms.default: no store named %q", c.Default))
	}
	return errs
}

func sortedStoreNames(m map[string]StoreConfig) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// openKeyStore opens every configured store and routes tenants to them. A store whose server
// is down still opens (it fails its own tenants' calls until it is back); bad configuration or
// refused credentials are errors.
func (d *Daemon) openKeyStore(ctx context.Context, env Env) (*route.Router, error) {
	stores, routes, def := d.cfg.KMS.keyStores()
	open := map[string]route.Store{}
	se := storeEnv{d: d, env: env, LookupEnv: env.LookupEnv}
	for _, name := range sortedStoreNames(stores) {
		sc := stores[name]
		s, err := keyStoreKinds[sc.Backend].open(ctx, sc.Settings, se)
		if err != nil {
			return nil, fmt.Errorf("kms store %s (%s): %w", name, sc.Backend, err)
		}
		if c, ok := s.(interface{ Close() error }); ok {
			d.closers = append(d.closers, c.Close)
		}
		open[name] = s
		d.log.Info("key store open", "store", name, "backend", sc.Backend)
	}
	r, err := route.New(route.Options{Stores: open, Routes: routes, Default: def, Registerer: d.registry})
	if err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	for tenant, store := range routes {
		d.log.Info("key store route", "tenant", tenant, "store", store)
	}
	return r, nil
}

func openLocal(_ context.Context, c *LocalStoreConfig, e storeEnv) (route.Store, error) {
	d := e.d
	mk, from, err := local.MasterKey(d.cfg.MasterKeyFile, e.env.MasterKey, d.cfg.DataDir, d.cfg.Dev)
	if err != nil {
		return nil, err
	}
	path := c.Path
	if path == "" {
		path = filepath.Join(d.cfg.DataDir, "keyring")
	}
	k, err := local.Open(local.Options{Path: path, MasterKey: mk})
	if err != nil {
		return nil, err
	}
	d.log.Info("local keyring open", "path", path, "master_key_from", from)
	return k, nil
}

// KeyStoreHealthPrefix names each key store's service in gRPC health: "trust.kms/<store>".
const KeyStoreHealthPrefix = "trust.kms/"

// keyStoreHealthInterval is how often the stores are probed.
var keyStoreHealthInterval = 10 * time.Second

// watchKeyStores probes every store until ctx ends and publishes each one's state in gRPC
// health and in trustd_kms_store_up. trustd itself stays SERVING: one store's outage is its
// tenants' alone.
func (d *Daemon) watchKeyStores(ctx context.Context, hs *health.Server) {
	t := time.NewTicker(keyStoreHealthInterval)
	defer t.Stop()
	last := map[string]bool{}
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		states := d.keys.Check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		for name, err := range states {
			st := healthpb.HealthCheckResponse_SERVING
			if err != nil {
				st = healthpb.HealthCheckResponse_NOT_SERVING
			}
			hs.SetServingStatus(KeyStoreHealthPrefix+name, st)
			if ok, seen := last[name]; !seen || ok != (err == nil) {
				if err != nil {
					d.log.Warn("key store unhealthy: its tenants get Unavailable", "store", name, "err", err)
				} else if seen {
					d.log.Info("key store healthy again", "store", name)
				}
			}
			last[name] = err == nil
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
