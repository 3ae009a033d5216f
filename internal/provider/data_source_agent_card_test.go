package provider

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/kagenti/terraform-provider-kagenti/internal/cardsig"
	"github.com/kagenti/terraform-provider-kagenti/internal/cardsig/cardsigtest"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/router"
)

// The card comes from a real kagenti-router (static routes, on loopback), rewritten to it.
func TestAccAgentCardDataSource(t *testing.T) {
	testAccPreCheck(t)
	reg := router.NewRegistry()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	routerURL := "http://" + l.Addr().String()
	if err := reg.LoadStatic([]byte(`[{"namespace":"team1","name":"weather","protocol":"a2a","upstream":"http://127.0.0.1:1",
	  "card":{"name":"weather","description":"Weather answers","version":"1.4.0","url":"http://weather.team1.svc.cluster.local:8000","skills":[{"id":"forecast","name":"Forecast"}]}}]`)); err != nil {
		t.Fatal(err)
	}
	rt, err := router.New(router.Config{PublicURL: routerURL, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = rt.Serve(l) }()
	defer stopRouter(rt)
	ds := "data.kagenti_agent_card.weather"
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{
			{
				Config: fmt.Sprintf(`data "kagenti_agent_card" "weather" {
  router_url = %q
  namespace  = "team1"
  name       = "weather"
}`, routerURL),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("card_verification"), knownvalue.StringExact("off")),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("url"), knownvalue.StringExact(routerURL+"/a2a/team1/weather")),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("description"), knownvalue.StringExact("Weather answers")),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("skills"), knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("forecast")})),
				},
			},
			{
				Config:      fmt.Sprintf("data \"kagenti_agent_card\" \"x\" {\n  router_url = %q\n  namespace = \"team1\"\n  name = \"nobody\"\n}\n", routerURL),
				ExpectError: regexp.MustCompile(`serves no A2A agent team1/nobody`),
			},
		},
	})
}

// A verifying router: the card of an agent that serves it signed with its identity's SVID reads
// as verified; in strict mode, one that is not signed is an error that says why.
func TestAccAgentCardDataSource_Verification(t *testing.T) {
	testAccPreCheck(t)
	ca := cardsigtest.NewAuthority(t, "example.org")
	writer := ca.SVID(t, "/ns/team1/sa/writer")
	card := `{"name":"writer","description":"Writes","version":"1.0.0","url":"http://writer.team1.svc.cluster.local:8000","skills":[]}`
	signed, err := cardsig.Sign([]byte(card), writer)
	if err != nil {
		t.Fatal(err)
	}
	agent := func(body []byte) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	routes, _ := json.Marshal([]router.StaticRoute{
		{Namespace: "team1", Name: "writer", Protocol: "a2a", Upstream: agent(signed), Card: json.RawMessage(card), Policy: contract.Policy{Audience: writer.ID.String()}},
		{Namespace: "team1", Name: "unsigned", Protocol: "a2a", Upstream: agent([]byte(card)), Card: json.RawMessage(card), Policy: contract.Policy{Audience: writer.ID.String()}},
	})
	reg := router.NewRegistry()
	if err := reg.LoadStatic(routes); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	routerURL := "http://" + l.Addr().String()
	rt, err := router.New(router.Config{PublicURL: routerURL, Registry: reg, CardVerification: contract.CardVerificationStrict, TrustBundles: ca.Bundle()})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = rt.Serve(l) }()
	defer stopRouter(rt)
	config := func(name string) string {
		return fmt.Sprintf("data \"kagenti_agent_card\" \"x\" {\n  router_url = %q\n  namespace = \"team1\"\n  name = %q\n}\n", routerURL, name)
	}
	testAccRun(t, resource.TestCase{
		Steps: []resource.TestStep{
			{
				Config: config("writer"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.kagenti_agent_card.x", tfjsonpath.New("card_verification"), knownvalue.StringExact("verified")),
				},
			},
			{Config: config("unsigned"), ExpectError: regexp.MustCompile(`Card Not Verified[\s\S]*not\s+signed`)},
		},
	})
}
