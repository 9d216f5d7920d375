//go:build !unix

package shareddoc

// lockFile is a no-op where flock does not exist: File then serves one process only.
func lockFile(string) (func(), error) { return func() {}, nil }
