// Package loopback says whether a host is this machine's loopback: the one place trustd decides
// that a connection may go without TLS or a listener may run in dev mode.
package loopback

import "net"

// Host reports whether host (a name or an IP literal, without port) is "localhost" or a loopback
// address.
func Host(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
