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
