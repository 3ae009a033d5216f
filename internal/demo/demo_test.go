package demo

import (
	"encoding/base64"
	"testing"
)

func TestDescribeToken(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":["a","b"],"azp":"router","sub":"alice"}`))
	for _, c := range []struct{ in, want string }{
		{"", "none"},
		{"abc", "not a JWT"},
		{"x.!!.y", "unreadable"},
		{"x." + base64.RawURLEncoding.EncodeToString([]byte("[")) + ".y", "unreadable"},
		{"x." + payload + ".y", "aud=[a b] azp=router sub=alice"},
	} {
		if got := DescribeToken(c.in); got != c.want {
			t.Errorf("DescribeToken(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
