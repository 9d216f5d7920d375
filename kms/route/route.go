// Package route puts several key stores behind one kms.KeyStore: each tenant (hospital) is
// routed to the store that holds its keys, so a university hospital's keys can stay in its own
// HSM or its own Vault while a clinic uses the platform's Vault.
//
// The tenant is the first segment of a name ("uk-freiburg/records" belongs to "uk-freiburg");
// names of one segment, and tenants without a route, go to the default store, or are not found
// when there is none. A router never falls back to another store: a store that is down fails
// its own tenants' calls (kms.ErrUnavailable) and no one else's. Each store has its own
// metrics, labelled with its name, and its own health.
package route

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/secret"
)

// Store is one key store behind the router: both halves.
type Store interface {
	kms.KeyStore
	kms.Admin
}

// Healther is implemented by stores that can say whether they work without releasing anything.
type Healther interface {
	Health(ctx context.Context) error
}

// MinDecryptionVersioner is implemented by stores that can refuse old key versions.
type MinDecryptionVersioner interface {
	SetMinDecryptionVersion(ctx context.Context, name string, v uint32) error
}

// Options configure a Router.
type Options struct {
	// Stores by name, for example "platform-vault", "ukf-hsm".
	Stores map[string]Store
	// Routes maps a tenant to the name of its store.
	Routes map[string]string
	// Default is the store of tenants without a route and of one-segment names. Empty: those
	// are not found.
	Default string
	// Registerer, when set, receives the per-store metrics.
	Registerer prometheus.Registerer
	// Now defaults to time.Now.
	Now func() time.Time
}

// Router is a kms.KeyStore and kms.Admin over several stores. It is safe for concurrent use.
type Router struct {
	stores  map[string]*entry
	routes  map[string]*entry
	def     *entry
	now     func() time.Time
	metrics *routeMetrics
}

type entry struct {
	name  string
	store Store
}

var (
	_ kms.KeyStore = (*Router)(nil)
	_ kms.Admin    = (*Router)(nil)
	_ kms.Shredder = (*Router)(nil)
)

var (
	storeNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	tenantRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*$`)
)

// New checks the routes and returns a router. Every route and the default must name a store,
// and every store must be used by some route or be the default.
func New(o Options) (*Router, error) {
	if len(o.Stores) == 0 {
		return nil, errors.New("route: no key stores")
	}
	r := &Router{stores: map[string]*entry{}, routes: map[string]*entry{}, now: o.Now}
	if r.now == nil {
		r.now = time.Now
	}
	var errs []error
	for name, s := range o.Stores {
		if !storeNameRE.MatchString(name) {
			errs = append(errs, fmt.Errorf("stores: %q must match %s", name, storeNameRE))
		}
		if s == nil {
			errs = append(errs, fmt.Errorf("stores.%s: nil store", name))
		}
		r.stores[name] = &entry{name: name, store: s}
	}
	used := map[string]bool{}
	for tenant, name := range o.Routes {
		if !tenantRE.MatchString(tenant) || len(tenant) > kms.MaxNameLen {
			errs = append(errs, fmt.Errorf("routes: tenant %q is not a name segment", tenant))
		}
		e, ok := r.stores[name]
		if !ok {
			errs = append(errs, fmt.Errorf("routes.%s: no store named %q", tenant, name))
			continue
		}
		r.routes[tenant], used[name] = e, true
	}
	if o.Default != "" {
		e, ok := r.stores[o.Default]
		if !ok {
			errs = append(errs, fmt.Errorf("default: no store named %q", o.Default))
		}
		r.def, used[o.Default] = e, true
	}
	for _, name := range sortedKeys(r.stores) {
		if !used[name] {
			errs = append(errs, fmt.Errorf("stores.%s: no route and not the default: no tenant could reach it", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.Registerer != nil {
		m, err := newMetrics(o.Registerer, sortedKeys(r.stores))
		if err != nil {
			return nil, err
		}
		r.metrics = m
	}
	return r, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// StoreOf names the store that holds name.
func (r *Router) StoreOf(name string) (string, error) {
	e, err := r.route(name)
	if err != nil {
		return "", err
	}
	return e.name, nil
}

// Stores lists the stores' names.
func (r *Router) Stores() []string { return sortedKeys(r.stores) }

// Tenant reports whose store holds name when its tenant (the first segment) has a route of
// its own: the tenant and true. Names of the default store give false.
func (r *Router) Tenant(name string) (string, bool) {
	tenant, e := r.routed(name)
	return tenant, e != nil
}

// routed returns name's tenant and, when that tenant has a route of its own, its store.
func (r *Router) routed(name string) (string, *entry) {
	tenant, _, ok := strings.Cut(name, "/")
	if !ok {
		return "", nil
	}
	return tenant, r.routes[tenant]
}

func (r *Router) route(name string) (*entry, error) {
	if err := kms.CheckName(name); err != nil {
		return nil, err
	}
	return r.lookup(name)
}

// lookup is route for a name already checked (a kms.Bound's).
func (r *Router) lookup(name string) (*entry, error) {
	if _, e := r.routed(name); e != nil {
		return e, nil
	}
	if r.def == nil {
		return nil, fmt.Errorf("%q: %w: no key store for its tenant", name, kms.ErrNotFound)
	}
	return r.def, nil
}

// observe records one call's outcome for the store.
func (r *Router) observe(e *entry, op string, start time.Time, err error) {
	if r.metrics != nil {
		r.metrics.observe(e.name, op, r.now().Sub(start), err)
	}
}

// GenerateDataKey implements kms.KeyStore.
func (r *Router) GenerateDataKey(ctx context.Context, b kms.Bound) (*kms.DataKey, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	e, err := r.lookup(b.Name())
	if err != nil {
		return nil, err
	}
	start := r.now()
	dk, err := e.store.GenerateDataKey(ctx, b)
	r.observe(e, "generate", start, err)
	if err != nil {
		return nil, err
	}
	return dk, nil
}

// UnwrapDataKey implements kms.KeyStore.
func (r *Router) UnwrapDataKey(ctx context.Context, b kms.Bound, wrapped []byte) (*secret.Bytes, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	e, err := r.lookup(b.Name())
	if err != nil {
		return nil, err
	}
	start := r.now()
	k, err := e.store.UnwrapDataKey(ctx, b, wrapped)
	r.observe(e, "unwrap", start, err)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// GetSecret implements kms.KeyStore.
func (r *Router) GetSecret(ctx context.Context, name string) (*kms.Secret, error) {
	e, err := r.route(name)
	if err != nil {
		return nil, err
	}
	start := r.now()
	s, err := e.store.GetSecret(ctx, name)
	r.observe(e, "get_secret", start, err)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// CreateKey implements kms.Admin in the tenant's store.
func (r *Router) CreateKey(ctx context.Context, name string) error {
	e, err := r.route(name)
	if err != nil {
		return err
	}
	start := r.now()
	err = e.store.CreateKey(ctx, name)
	r.observe(e, "create_key", start, err)
	return err
}

// RotateKey implements kms.Admin in the tenant's store.
func (r *Router) RotateKey(ctx context.Context, name string) error {
	e, err := r.route(name)
	if err != nil {
		return err
	}
	start := r.now()
	err = e.store.RotateKey(ctx, name)
	r.observe(e, "rotate_key", start, err)
	return err
}

// PutSecret implements kms.Admin in the tenant's store.
func (r *Router) PutSecret(ctx context.Context, name string, value *secret.Bytes) (uint64, error) {
	e, err := r.route(name)
	if err != nil {
		return 0, err
	}
	start := r.now()
	v, err := e.store.PutSecret(ctx, name, value)
	r.observe(e, "put_secret", start, err)
	return v, err
}

// ShredKey destroys the named key for good in the tenant's store, in stores that can
// (kms.Shredder). A store that cannot shred says so and changes nothing.
func (r *Router) ShredKey(ctx context.Context, name string) error {
	e, err := r.route(name)
	if err != nil {
		return err
	}
	sh, ok := e.store.(kms.Shredder)
	if !ok {
		return fmt.Errorf("key store %s cannot shred keys", e.name)
	}
	start := r.now()
	err = sh.ShredKey(ctx, name)
	r.observe(e, "shred_key", start, err)
	return err
}

// SetMinDecryptionVersion refuses data keys wrapped under older versions, in stores that can.
func (r *Router) SetMinDecryptionVersion(ctx context.Context, name string, v uint32) error {
	e, err := r.route(name)
	if err != nil {
		return err
	}
	m, ok := e.store.(MinDecryptionVersioner)
	if !ok {
		return fmt.Errorf("key store %s cannot set a minimum decryption version", e.name)
	}
	start := r.now()
	err = m.SetMinDecryptionVersion(ctx, name, v)
	r.observe(e, "set_min_version", start, err)
	return err
}

// Check probes every store that can be probed, concurrently, and returns each store's state
// (nil: healthy). A store that cannot be probed counts as healthy until a call fails.
func (r *Router) Check(ctx context.Context) map[string]error {
	out := make(map[string]error, len(r.stores))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, e := range r.stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if h, ok := e.store.(Healther); ok {
				err = h.Health(ctx)
			}
			if r.metrics != nil {
				r.metrics.up(name, err == nil)
			}
			mu.Lock()
			out[name] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
