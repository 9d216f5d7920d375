package vault

import (
	"regexp"
	"strings"
)

// APIPath is one Vault API path the store calls, with its method. In Path, {mount} is an auth
// mount, {transit} and {kv} are the configured transit and KV v2 mounts, {key} is one segment
// and {path} one or more.
type APIPath struct {
	Method string
	Path   string
	// What the store uses it for.
	Use string
}

// OpenBaoPaths are the only paths the store calls: each is served by OpenBao (2.x) with the
// same request and answer as by Vault. README.md lists them too; TestOpenBaoPaths records
// every request the store makes against a real Vault and fails on any other.
var OpenBaoPaths = []APIPath{
	{"GET", "auth/token/lookup-self", "check the token after a 403; health"},
	{"PUT", "auth/token/renew-self", "renew the token"},
	{"PUT", "auth/token/revoke-self", "revoke a login token on Close"},
	{"PUT", "auth/{mount}/login", "AppRole and Kubernetes login"},
	{"GET", "{transit}/keys/{key}", "check a key is derived; Exists for CreateKey"},
	{"PUT", "{transit}/keys/{key}", "CreateKey"},
	{"PUT", "{transit}/keys/{key}/rotate", "RotateKey"},
	{"PUT", "{transit}/keys/{key}/config", "SetMinDecryptionVersion"},
	{"PUT", "{transit}/datakey/plaintext/{key}", "GenerateDataKey"},
	{"PUT", "{transit}/decrypt/{key}", "UnwrapDataKey"},
	{"PUT", "{transit}/rewrap/{key}", "RewrapDataKey"},
	{"GET", "{kv}/data/{path}", "GetSecret, GetSecretVersion"},
	{"PUT", "{kv}/data/{path}", "PutSecret"},
}

// AllowedPath reports whether a request (method, and URL path after /v1/) is one of
// OpenBaoPaths, with the placeholders taken from cfg: only cfg's mounts count.
func AllowedPath(cfg *Config, method, path string) bool {
	return AllowedPathIn(cfg, OpenBaoPaths, method, path)
}

// AllowedPathIn is AllowedPath for another list.
func AllowedPathIn(cfg *Config, list []APIPath, method, path string) bool {
	var transit, kv []string
	for _, m := range newRouter(cfg).mappings() {
		transit, kv = append(transit, regexp.QuoteMeta(m.TransitMount)), append(kv, regexp.QuoteMeta(m.KVMount))
	}
	mounts := []string{regexp.QuoteMeta(orDefault(cfg.Auth.AppRole.Mount, "approle")), regexp.QuoteMeta(orDefault(cfg.Auth.Kubernetes.Mount, "kubernetes"))}
	r := strings.NewReplacer(
		"{mount}", "(?:"+strings.Join(mounts, "|")+")",
		"{transit}", "(?:"+strings.Join(transit, "|")+")",
		"{kv}", "(?:"+strings.Join(kv, "|")+")",
		"{key}", "[^/]+",
		"{path}", "[^/]+(?:/[^/]+)*",
	)
	for _, p := range list {
		if p.Method == method && regexp.MustCompile("^"+r.Replace(p.Path)+"$").MatchString(path) {
			return true
		}
	}
	return false
}

// mappings lists every tenant's mapping and the global one.
func (r *router) mappings() []Mapping {
	var out []Mapping
	for _, m := range r.tenants {
		out = append(out, m)
	}
	if r.global != nil {
		out = append(out, *r.global)
	}
	return out
}
