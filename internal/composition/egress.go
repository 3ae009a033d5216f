package composition

import (
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// workloadEgress are the destinations a workload's NetworkPolicy lets it reach besides the
// router and DNS: the endpoints its settings name, then the rules it declares, without repeats.
// A NetworkPolicy cannot name a host, so an endpoint with a host name opens its port to any
// destination; one with an IP address, that address only.
func workloadEgress(in Input) []EgressRule {
	var rules []EgressRule
	add := func(r EgressRule) {
		if r.Protocol == "" {
			r.Protocol = "TCP"
		}
		if !slices.Contains(rules, r) {
			rules = append(rules, r)
		}
	}
	endpoints := []string{in.OTELEndpoint}
	if in.LLM != nil {
		endpoints = append(endpoints, in.LLM.BaseURL)
	}
	if in.Identity != nil && in.Identity.Client != nil {
		endpoints = append(endpoints, in.IdentityProviderURL)
	}
	for _, e := range endpoints {
		if r, ok := urlEgress(e); ok {
			add(r)
		}
	}
	for _, r := range in.Egress {
		add(r)
	}
	return rules
}

// urlEgress is the egress rule that reaches an http(s) URL.
func urlEgress(raw string) (EgressRule, bool) {
	u, err := url.Parse(raw)
	if raw == "" || err != nil || u.Hostname() == "" {
		return EgressRule{}, false
	}
	port := map[string]int64{"http": 80, "https": 443}[u.Scheme]
	if p := u.Port(); p != "" {
		port, _ = strconv.ParseInt(p, 10, 64)
	}
	if port == 0 {
		return EgressRule{}, false
	}
	r := EgressRule{Port: port}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
		r.CIDR = netip.PrefixFrom(ip, ip.BitLen()).String()
	}
	return r, true
}

func validateEgress(rules []EgressRule) field.ErrorList {
	var errs field.ErrorList
	for i, r := range rules {
		p := field.NewPath("network_policy", "egress").Index(i)
		if r.CIDR != "" {
			if _, _, err := net.ParseCIDR(r.CIDR); err != nil {
				errs = append(errs, field.Invalid(p.Child("cidr"), r.CIDR, "must be a CIDR such as 10.0.0.0/8 or 192.0.2.10/32"))
			}
		}
		if r.Port < 1 || r.Port > 65535 {
			errs = append(errs, field.Invalid(p.Child("port"), r.Port, "must be a port number, 1 to 65535"))
		}
		if r.Protocol != "" && !slices.Contains(EgressProtocols, r.Protocol) {
			errs = append(errs, field.NotSupported(p.Child("protocol"), r.Protocol, EgressProtocols))
		}
	}
	return errs
}
