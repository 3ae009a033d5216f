// Package demo holds what the demo agent and the demo tool share: how they show the token that
// reached them.
package demo

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// DescribeToken shows a JWT's aud, azp and sub, unverified: the demo workloads only display
// them (verifying tokens is the router's job in front of them).
func DescribeToken(jwt string) string {
	if jwt == "" {
		return "none"
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "not a JWT"
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "unreadable"
	}
	var c map[string]any
	if json.Unmarshal(payload, &c) != nil {
		return "unreadable"
	}
	return fmt.Sprintf("aud=%v azp=%v sub=%v", c["aud"], c["azp"], c["sub"])
}
