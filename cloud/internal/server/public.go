package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// ParsePublicURL checks the address users and devices reach the cloud at:
// http or https, a host, nothing else (the cloud serves at the root of its
// host, so no path, query, fragment or user). It returns the URL with a
// lowercase scheme and host.
func ParsePublicURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("public URL %q: %w", s, err)
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("public URL %q: want http:// or https://", s)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("public URL %q: no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("public URL %q: no user or password allowed", s)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return nil, fmt.Errorf("public URL %q: the cloud serves at the root of its host; no path, query or fragment", s)
	}
	if p := u.Port(); p != "" {
		if _, err := netip.ParseAddrPort("127.0.0.1:" + p); err != nil {
			return nil, fmt.Errorf("public URL %q: bad port", s)
		}
	}
	u.Path = ""
	return u, nil
}

// ParseTrustedProxies parses a comma-separated list of IP addresses and
// CIDR prefixes ("127.0.0.1, 10.0.0.0/8, ::1"). An empty string is none.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("trusted proxy %q: want an IP address or a CIDR prefix like 10.0.0.0/8", f))
				continue
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("trusted proxy %q: want an IP address or a CIDR prefix like 10.0.0.0/8", f))
			continue
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, errors.Join(errs...)
}

// trusts reports whether a is inside one of the prefixes.
func trusts(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port ("1.2.3.4:5678", "[::1]:80"), as some proxies write them.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// ClientAddr returns the address a request is treated as coming from.
// Without trusted proxies, or when the TCP peer is not one of them, it is
// the peer and X-Forwarded-For is ignored: anyone can write that header.
// When the peer is a trusted proxy, X-Forwarded-For (all its headers, in
// order) is read from the right, the end the proxies appended to: the
// first address that is not itself a trusted proxy is the client. An entry
// that is not an address ends the walk at the last trusted hop; a header
// of trusted proxies only yields its leftmost address.
func ClientAddr(peer netip.Addr, xff []string, trusted []netip.Prefix) netip.Addr {
	peer = peer.Unmap()
	if len(trusted) == 0 || !trusts(trusted, peer) {
		return peer
	}
	var hops []string
	for _, h := range xff {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			return client
		}
		client = a
		if !trusts(trusted, a) {
			return a
		}
	}
	return client
}

// clientAddrs rewrites r.RemoteAddr to ClientAddr (port 0 when it came from
// X-Forwarded-For), so that everything that counts by address — the
// per-address registration limits, login throttling, the audit log — sees
// the client rather than the proxy. With no trusted proxies it is h.
func clientAddrs(h http.Handler, trusted []netip.Prefix) http.Handler {
	if len(trusted) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		peer, err := netip.ParseAddr(host)
		if err == nil {
			if c := ClientAddr(peer, r.Header.Values("X-Forwarded-For"), trusted); c != peer.Unmap() {
				r = r.WithContext(r.Context()) // a copy: the caller's request stays as it was
				r.RemoteAddr = net.JoinHostPort(c.String(), "0")
			}
		}
		h.ServeHTTP(w, r)
	})
}
