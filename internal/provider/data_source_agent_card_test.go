package provider

import (
	"fmt"
	"net"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

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
