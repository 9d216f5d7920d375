// Package release is the one vocabulary of key releases that the service decides in, the audit
// log records and the metrics count: what kind of release a call is, which grant kind it needs,
// and how it ended. It is a leaf: it imports nothing, so that every package can share it.
//
// The canonical strings are part of trustd's interfaces: they appear as audit record verdicts,
// as token grant kinds and as Prometheus label values. They never change meaning.
package release

// Kind is what a release call hands out.
type Kind string

// Release kinds.
const (
	// Secret is GetSecret: a stored secret.
	Secret Kind = "secret"
	// DataKey is GenerateDataKey: a fresh data key and its wrapped form.
	DataKey Kind = "data_key"
	// Unwrap is UnwrapDataKey: the plaintext of a wrapped data key.
	Unwrap Kind = "unwrap"
)

// Kinds lists every Kind, in a fixed order.
func Kinds() []Kind { return []Kind{Secret, DataKey, Unwrap} }

// GrantKind is what a policy grants and a result token carries. A data key grant covers both
// generating and unwrapping keys of that name.
type GrantKind string

// Grant kinds.
const (
	GrantSecret  GrantKind = "secret"
	GrantDataKey GrantKind = "data_key"
)

// Valid reports whether g is GrantSecret or GrantDataKey.
func (g GrantKind) Valid() bool { return g == GrantSecret || g == GrantDataKey }

// Grant is one name a policy grants and a result token carries: the workload may receive the
// key or secret Name as Kind allows. Its CBOR and JSON forms are those of docs/tokens.md.
type Grant struct {
	Kind GrantKind `cbor:"1,keyasint" json:"kind"`
	Name string    `cbor:"2,keyasint" json:"name"`
}

// Grant is the grant kind a release of kind k needs.
func (k Kind) Grant() GrantKind {
	if k == Secret {
		return GrantSecret
	}
	return GrantDataKey
}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool { return k == Secret || k == DataKey || k == Unwrap }

// Outcome is how a decision ended. Attestations and releases share it; it is the audit
// record's verdict.
type Outcome string

// Outcomes.
const (
	// Allow: the evidence was approved or the key material released.
	Allow Outcome = "allow"
	// Deny: a policy, a grant or the evidence itself refused the call.
	Deny Outcome = "deny"
	// Error: trustd could not decide (key store, collateral, internal error); nothing was
	// issued or released.
	Error Outcome = "error"
)

// Outcomes lists every Outcome, in a fixed order.
func Outcomes() []Outcome { return []Outcome{Allow, Deny, Error} }

// Valid reports whether o is one of Outcomes.
func (o Outcome) Valid() bool { return o == Allow || o == Deny || o == Error }
