# The quickstart environment: run it with `make demo`, which starts a local sandbox and sets
# KUBECONFIG, KAGENTI_SPIRE_* and KAGENTI_KEYCLOAK_* for the provider.
terraform {
  required_providers {
    kagenti = {
      source = "kagenti/kagenti"
    }
  }
}

provider "kagenti" {}

data "kagenti_environment" "current" {}

output "kubernetes" {
  value = data.kagenti_environment.current.kubernetes
}

output "spire_trust_domain" {
  value = data.kagenti_environment.current.spire.trust_domain
}

output "spire_jwt_keys" {
  value = [for k in jsondecode(data.kagenti_environment.current.spire.bundle_jwks).keys : k.kid if k.use == "jwt-svid"]
}

output "keycloak" {
  value = data.kagenti_environment.current.keycloak
}

# One MCP tool and one agent wired to it, in the default namespace.
resource "kagenti_tool" "weather" {
  name      = "weather-tool"
  namespace = "default"
  image     = "ghcr.io/example/weather-tool:0.3.1"
}

resource "kagenti_agent" "weather" {
  name        = "weather-service"
  namespace   = "default"
  framework   = "langgraph"
  image       = "ghcr.io/example/weather-service:1.4.0"
  description = "Answers questions about the weather"
  skills      = [{ id = "forecast", name = "Forecast", tags = ["weather"] }]
  tools       = [kagenti_tool.weather.id]
  replicas    = 2
}

output "agent" {
  value = {
    url            = kagenti_agent.weather.url
    ready_replicas = kagenti_agent.weather.ready_replicas
    objects        = [for o in kagenti_agent.weather.objects : "${o.kind}/${o.name} in_sync=${o.in_sync}"]
    card           = jsondecode(kagenti_agent.weather.card)
  }
}

# A callable agent behind kagenti-router, with no static secret anywhere on the agent's side:
# `make demo` runs it on loopback (kagenti-demo-agent) and registers it by endpoint. The router
# and a demo client get Keycloak clients; the demo client asks for a token addressed to the
# router, and the router exchanges it for one addressed to the agent.
variable "hello_agent_url" {
  type    = string
  default = "http://127.0.0.1:18950"
}

resource "kagenti_identity" "router" {
  namespace       = "default"
  service_account = "kagenti-router"
  keycloak_client = { authentication = "client-secret", token_exchange = true }
}

resource "kagenti_identity" "demo_client" {
  namespace       = "default"
  service_account = "demo-client"
  keycloak_client = { authentication = "client-secret", audiences = [kagenti_identity.router.keycloak_client_id] }
}

resource "kagenti_agent" "hello" {
  name        = "hello-agent"
  namespace   = "default"
  framework   = "custom"
  endpoint    = var.hello_agent_url
  description = "Greets, and says which token reached it"
  skills      = [{ id = "greet", name = "Greet", tags = ["demo"] }]
  # The demo agent is built with an A2A 1.0 SDK; the router serves 0.3 clients too, translating.
  a2a_versions = ["1.0"]
  # Also offered to other agents as an MCP tool, at <router>/mcp/default.
  expose_as_tool = true
  identity = {
    keycloak_client = {
      allowed_callers = [kagenti_identity.demo_client.keycloak_client_id, kagenti_identity.router.keycloak_client_id]
    }
  }
}

output "router_client_id" {
  value = kagenti_identity.router.keycloak_client_id
}

output "router_audience_scope" {
  value = kagenti_identity.router.audience_scope
}

output "demo_client_id" {
  value = kagenti_identity.demo_client.keycloak_client_id
}
