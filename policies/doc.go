// Package policies decides whether verified claims are acceptable and what the workload may
// receive. Policies are written, tested, signed and rolled out by the platform security team as
// YAML documents (apiVersion trust.medicus.cloud/v1, kind ImagePolicy), one per image or workload
// class; package attest has already established that the claims are authentic.
//
// What is here:
//   - the policy format and its strict parser (Parse, Load, ParseFile): unknown fields, wrong types
//     and CEL rules that do not compile to bool are errors that name file, line and column;
//   - evaluation (Bundle.Evaluate), indexed by TEE type and measurement so that its cost does not
//     grow with the number of images, and explained check by check (Bundle.Explain);
//   - context constraints on grants (Decision.CheckContext, Bundle.CheckContext), checked by the
//     service on every release;
//   - reference values imported from the image build pipeline (ImportReferenceValues);
//   - measured images (components.go, refsigned.go, corim.go): vendor-signed reference-value
//     sets (*.refs.cose, COSE_Sign1) that a policy trusts per image (spec.images), boot
//     components from event logs (spec.components), CoRIM export and import;
//   - signed bundles (several detached COSE_Sign1 over one manifest), the two-person rule, rollback
//     protection and hot reload (Store);
//   - strict decoding for files that live beside policies (DecodeStrict, ReadClaims).
//
// What is not here: verifying evidence (package attest), issuing tokens (package ear/issuer),
// talking to key stores (package kms), running policy test files (package policies/policytest)
// and the reports of `trustctl policy` (cmd/trustctl). The package never logs, reads the environment or registers flags.
//
// Evaluation is deterministic and fails closed: a policy that cannot be evaluated (a CEL rule
// that errors, a claim that is absent) denies, and a denial names the claim, the value seen and
// the value expected.
package policies
