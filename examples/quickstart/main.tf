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

# Where the sandbox runs real pods: its one real node (kwok's simulated nodes hold the rest).
variable "real_node" {
  description = "Node selector and toleration that place a pod on a node that runs it for real."
  type = object({
    node_selector = map(string)
    tolerations   = list(object({ key = string, operator = string, effect = string }))
  })
  default = {
    node_selector = { "kagenti.dev/real-node" = "true" }
    tolerations   = [{ key = "kagenti.dev/real-node", operator = "Exists", effect = "NoSchedule" }]
  }
}

variable "images" {
  description = "Images of the router and the demo workloads (`make demo` builds and imports them into the sandbox)."
  type        = object({ router = string, demo_agent = string, demo_tool = string })
  default = {
    router     = "kagenti.local/kagenti-router:dev"
    demo_agent = "kagenti.local/kagenti-demo-agent:dev"
    demo_tool  = "kagenti.local/kagenti-demo-tool:dev"
  }
}

variable "keycloak_ca_pem" {
  description = "PEM of the CA of the sandbox's Keycloak, which the demo agent trusts for its token exchanges."
  type        = string
  default     = ""
}

# kagenti-router in the cluster. With the SPIRE agent's Workload API mounted into pods
# (by the SPIFFE CSI driver, KAGENTI_SPIRE_WORKLOAD_API_CSI_DRIVER), it logs in to Keycloak with its JWT-SVID: no secret.
resource "kagenti_platform" "main" {
  namespace        = "default"
  create_namespace = false
  agent_namespaces = ["default"]
  router_image     = var.images.router
  token_exchange   = true
  router_pod       = var.real_node
}

# One MCP tool, running for real: the demo tool (the official MCP Go SDK) says which token
# reached it.
resource "kagenti_tool" "weather" {
  name      = "weather-tool"
  namespace = "default"
  image     = var.images.demo_tool
  port      = 8080
  pod       = merge(var.real_node, { args = ["-listen=:8080"] })
  identity = {
    keycloak_client = {
      allowed_callers = [kagenti_agent.hello.client_id, local.weather_service_id, kagenti_platform.main.router_client_id]
    }
  }
}

locals {
  # The tool names the agent that lists it in tools by its SPIFFE ID: a reference to the agent
  # would be a cycle. The agent's client claims the grant when it is created.
  weather_service_id = "spiffe://${data.kagenti_environment.current.spire.trust_domain}/ns/default/sa/weather-service"
}

# One agent wired to it, on simulated nodes (the image is an example): its composition, card and
# readiness, without running it.
resource "kagenti_agent" "weather" {
  name        = "weather-service"
  namespace   = "default"
  framework   = "langgraph"
  image       = "ghcr.io/example/weather-service:1.4.0"
  description = "Answers questions about the weather"
  skills      = [{ id = "forecast", name = "Forecast", tags = ["weather"] }]
  tools       = [kagenti_tool.weather.id]
  replicas    = 2
  # Calls the tool through the router with its own identity; the plan fails if the tool does
  # not allow it.
  identity = {
    keycloak_client = { token_exchange = true, audiences = [kagenti_platform.main.router_client_id] }
  }
}

output "agent" {
  value = {
    url            = kagenti_agent.weather.url
    ready_replicas = kagenti_agent.weather.ready_replicas
    objects        = [for o in kagenti_agent.weather.objects : "${o.kind}/${o.name} in_sync=${o.in_sync}"]
    card           = jsondecode(kagenti_agent.weather.card)
  }
}

# A callable agent behind the router, with no secret on its side: the demo agent, as a pod. It
# answers, and asks the weather tool through the router with the caller's token exchanged at
# Keycloak, authenticated by its own JWT-SVID. A demo client outside the cluster gets a token
# addressed to the router, which exchanges it for one addressed to the agent.
resource "kagenti_identity" "demo_client" {
  namespace       = "default"
  service_account = "demo-client"
  keycloak_client = { authentication = "client-secret", audiences = [kagenti_platform.main.router_client_id] }
}

resource "kagenti_agent" "hello" {
  name        = "hello-agent"
  namespace   = "default"
  framework   = "custom"
  image       = var.images.demo_agent
  port        = 8080
  description = "Greets, says which token reached it, and asks the weather tool"
  skills      = [{ id = "greet", name = "Greet", tags = ["demo"] }]
  # The demo agent is built with an A2A 1.0 SDK; the router serves 0.3 clients too, translating.
  a2a_versions = ["1.0"]
  # Also offered to other agents as an MCP tool, at <router>/mcp/default.
  expose_as_tool = true
  env            = { KAGENTI_ISSUER_CA_PEM = var.keycloak_ca_pem }
  pod = merge(var.real_node, {
    args = [
      "-listen=:8080", "-name=hello-agent",
      "-tool=${kagenti_platform.main.router_url}/tools/default/weather-tool",
      "-issuer=${data.kagenti_environment.current.keycloak.issuer}",
      "-router-audience=${kagenti_platform.main.router_client_id}",
    ]
  })
  identity = {
    keycloak_client = {
      token_exchange  = true
      audiences       = [kagenti_platform.main.router_client_id]
      allowed_callers = [kagenti_identity.demo_client.keycloak_client_id, kagenti_platform.main.router_client_id]
    }
  }
}

output "router_url" {
  value = kagenti_platform.main.router_url
}

output "router_client_id" {
  value = kagenti_platform.main.router_client_id
}

output "router_audience_scope" {
  value = kagenti_platform.main.router_audience_scope
}

output "demo_client_id" {
  value = kagenti_identity.demo_client.keycloak_client_id
}

# Who may call whom: every edge of the environment, one line each (see the identities guide).
output "access" {
  value = sort(concat(kagenti_tool.weather.access, kagenti_agent.weather.access, kagenti_agent.hello.access,
  kagenti_identity.demo_client.access))
}
