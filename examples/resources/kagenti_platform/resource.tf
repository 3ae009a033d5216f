# The front door: kagenti-router in its own namespace, serving the agents of team1 and team2,
# validating callers' Keycloak tokens and exchanging them for each agent.
resource "kagenti_platform" "main" {
  namespace        = "kagenti-system"
  agent_namespaces = ["team1", "team2"]
  router_replicas  = 2
  router_resources = { limits = { memory = "512Mi" } }
  public_url       = "https://agents.example.com"
  token_exchange   = true
}

# Callers get tokens addressed to the router; agents let the router obtain tokens for them.
resource "kagenti_identity" "ui" {
  namespace       = "team1"
  service_account = "ui"
  keycloak_client = { audiences = [kagenti_platform.main.router_client_id] }
}

resource "kagenti_agent" "weather" {
  name      = "weather-service"
  namespace = "team1"
  framework = "langgraph"
  image     = "ghcr.io/example/weather-service:1.4.0"
  identity = {
    keycloak_client = {
      allowed_callers = [kagenti_identity.ui.keycloak_client_id, kagenti_platform.main.router_client_id]
    }
  }
}

# In a namespace that exists already (an OpenShift project, one managed by policy), with the
# router's own settings and pod settings.
resource "kagenti_platform" "adopted" {
  namespace        = "agents-prod"
  create_namespace = false
  agent_namespaces = ["team1"]
  router_settings  = { upstream_timeout = "5m", log_level = "warn" }
  router_pod = {
    node_selector      = { "node-role.kubernetes.io/infra" = "" }
    image_pull_secrets = ["mirror"]
  }
}

# Behind a Gateway API Gateway, in an Istio ambient mesh.
resource "kagenti_platform" "edge" {
  namespace        = "kagenti-edge"
  agent_namespaces = ["team3"]
  gateway = {
    parent_name      = "public"
    parent_namespace = "gateways"
    hostnames        = ["agents.example.com"]
    path_prefix      = "/kagenti"
  }
  mesh     = "istio-ambient"
  waypoint = true
}

output "weather_agent_card" {
  value = "${kagenti_platform.main.router_url}/a2a/team1/weather-service/.well-known/agent-card.json"
}
