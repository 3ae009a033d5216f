package router

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The front door: what every request must pass before it is routed, the first stage of the
// chain (chain.go). A request that fails it is refused with 400 in the shape of the API it was
// addressed to; nothing of it reaches an agent, and a refusal is never counted against one.
//
// Paths are matched and forwarded as the client escaped them, so the router and the agent (or
// an ingress in front of it) cannot read one path two ways; a path that could climb out of its
// route once decoded — a "." or ".." segment, raw or escaped — is refused outright.

// errBadTarget, errBadHeader: the request is malformed; the message is safe to show the client.
var (
	errBadTarget = errors.New("the request path is not allowed: it has a \".\" or \"..\" segment (raw or percent-encoded), a malformed percent-escape or a fragment")
	errBadHeader = errors.New("the request has a header whose name or value is not valid HTTP")
)

// checkRequest is the front door's check of a request whose headers net/http has read. net/http
// refuses malformed header names and values itself; the check stays, as the router's own rule,
// for the trailers and whatever a future server lets through.
func checkRequest(r *http.Request) error {
	path, ok := targetPath([]byte(r.RequestURI))
	if !ok || checkPath(path) != nil {
		return errBadTarget
	}
	for _, h := range []http.Header{r.Header, r.Trailer} {
		for k, vs := range h {
			if !httpguts.ValidHeaderFieldName(k) {
				return errBadHeader
			}
			for _, v := range vs {
				if !httpguts.ValidHeaderFieldValue(v) {
					return errBadHeader
				}
			}
		}
	}
	return nil
}

// targetPath is the path of a request target (RFC 9112, 3.2) as the client sent it, still
// escaped, without its query: "/a/b" for "/a/b?q" and for "http://host/a/b?q"; "*" for
// OPTIONS *. ok is false for anything else (an authority, a relative path).
func targetPath(target []byte) (path []byte, ok bool) {
	s := target
	switch {
	case len(s) > 0 && s[0] == '/':
	case len(s) == 1 && s[0] == '*':
		return s, true
	default:
		i := bytes.Index(s, []byte("://"))
		if i <= 0 {
			return nil, false
		}
		s = s[i+3:]
		slash, query := bytes.IndexByte(s, '/'), bytes.IndexByte(s, '?')
		if slash < 0 || (query >= 0 && query < slash) {
			return []byte("/"), true
		}
		s = s[slash:]
	}
	if i := bytes.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	return s, true
}

// checkPath refuses an escaped path that a server behind the router could read as climbing
// out of the route: a segment that is "." or ".." once decoded — "%2e%2E", or formed with an
// encoded slash ("..%2F") or a backslash (which some servers take for a slash), or followed by
// ";params" (which Java servers strip) — and paths whose escapes cannot be decoded, or that
// carry a fragment (no client sends one; servers disagree on where it starts).
func checkPath(path []byte) error {
	if bytes.IndexByte(path, '#') >= 0 {
		return errBadTarget
	}
	if bytes.IndexByte(path, '.') < 0 && bytes.IndexByte(path, '%') < 0 {
		return nil // the common case: nothing could form a dot segment
	}
	for segment := range bytes.SplitSeq(path, []byte("/")) {
		decoded, err := url.PathUnescape(string(segment))
		if err != nil {
			return errBadTarget
		}
		for piece := range strings.FieldsFuncSeq(decoded, func(r rune) bool { return r == '/' || r == '\\' }) {
			if piece, _, _ = strings.Cut(piece, ";"); piece == "." || piece == ".." {
				return errBadTarget
			}
		}
	}
	return nil
}

// canonicalPath sets r.URL's path from the target the client sent, escaped as the client
// escaped it (only the bytes a URL path may not hold raw are escaped), so that routing and the
// paths forwarded to agents see exactly the client's escapes: url.URL would otherwise escape
// the decoded path anew when the client's escaping is not the one Go would choose, and an
// encoded slash would come out as a slash.
func canonicalPath(r *http.Request) {
	raw, ok := targetPath([]byte(r.RequestURI))
	if !ok || string(raw) == "*" {
		return
	}
	escaped := escapeRaw(string(raw))
	decoded, err := url.PathUnescape(escaped)
	if err != nil {
		return // the front door refused it already
	}
	r.URL.Path, r.URL.RawPath = decoded, escaped
}

// escapeRaw percent-encodes the bytes of an escaped path that RFC 3986 does not allow in a
// path, and only those: the client's escapes stay as they are.
func escapeRaw(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' || c == '/' || pathByte(c) {
			if b.Len() > 0 {
				b.WriteByte(c)
			}
			continue
		}
		if b.Len() == 0 {
			b.Grow(len(p) + 8)
			b.WriteString(p[:i])
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	if b.Len() == 0 {
		return p
	}
	return b.String()
}

// pathByte tells whether c may appear raw in a path segment (RFC 3986 pchar, but '%').
func pathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0
}

// pathTail is the escaped path of r after its first n segments: "/v1/message:send" for
// "/a2a/ns/name/v1/message:send" and n = 3; "" when nothing follows them. ServeMux splits the
// escaped path on "/" the same way, so the tail is what its {rest...} matched, still escaped.
func pathTail(r *http.Request, n int) string {
	p := r.URL.EscapedPath()
	i := 0
	for range n {
		j := strings.IndexByte(p[i+1:], '/')
		if j < 0 {
			return ""
		}
		i += 1 + j
	}
	return p[i:]
}

// spoofedHeader tells whether a client's header claims to say where the request came from:
// Forwarded, X-Forwarded-*, X-Real-IP, X-Client-IP or True-Client-IP, in any case and with "_"
// for "-" (a WSGI or CGI agent reads X_Forwarded_For as X-Forwarded-For). A client chooses
// them freely, so no agent gets them from a client: the router drops them on every path and
// sets X-Forwarded-For, -Host and -Proto itself.
func spoofedHeader[T string | []byte](name T) bool {
	return headerNameIs(name, "forwarded") || headerNameIs(name, "x-real-ip") || headerNameIs(name, "x-client-ip") ||
		headerNameIs(name, "true-client-ip") || (len(name) >= len("x-forwarded") && headerNameIs(name[:len("x-forwarded")], "x-forwarded"))
}

// headerNameIs tells whether name is want (lower case), in any case and with "_" for "-".
func headerNameIs[T string | []byte](name T, want string) bool {
	if len(name) != len(want) {
		return false
	}
	for i := range len(want) {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// setForwarded replaces out's forwarding headers with the router's own, from in: the client's
// address, the host it asked for and the scheme it used. It takes none of the client's
// (httputil's SetXForwarded would keep the client's X-Forwarded-For in front of the router's).
func setForwarded(out http.Header, in *http.Request) {
	for k := range out {
		if spoofedHeader(k) {
			delete(out, k)
		}
	}
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		out.Set("X-Forwarded-For", ip)
	}
	out.Set("X-Forwarded-Host", in.Host)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	out.Set("X-Forwarded-Proto", proto)
}
