resource "kagenti_tool" "weather" {
  name      = "weather-tool"
  namespace = "team1"
  image     = "ghcr.io/example/weather-tool:0.3.1"
  transport = "streamable-http"
  port      = 8000
}

resource "kagenti_agent" "weather" {
  name        = "weather-service"
  namespace   = "team1"
  framework   = "langgraph"
  protocol    = "a2a"
  image       = "ghcr.io/example/weather-service:1.4.0"
  description = "Answers questions about the weather"
  # Built with an A2A 1.0 SDK that also serves the REST binding. Clients of either version reach
  # it through kagenti-router, which translates 0.3 calls.
  a2a_versions = ["1.0"]
  a2a_rest     = true
  skills = [{
    id          = "forecast"
    name        = "Forecast"
    description = "Forecasts the weather for a city"
    tags        = ["weather"]
  }]

  replicas   = 2
  resources  = { requests = { cpu = "250m", memory = "256Mi" }, limits = { memory = "1Gi" } }
  env        = { LOG_LEVEL = "info" }
  secret_env = { OPENAI_API_KEY = { secret = "openai", key = "apikey" } }
  llm        = { base_url = "http://ollama:11434/v1", model = "llama3.2:3b" }
  tools      = [kagenti_tool.weather.id]

  persistence = { size = "1Gi" }

  # What Deployments are usually given, without patches.
  labels = { team = "weather" }
  pod = {
    annotations        = { "prometheus.io/scrape" = "true" }
    node_selector      = { pool = "agents" }
    tolerations        = [{ key = "dedicated", value = "agents", effect = "NoSchedule" }]
    image_pull_secrets = ["registry-example"]
    env_from           = [{ config_map = "weather-settings" }]
    service_account_annotations = {
      "iam.gke.io/gcp-service-account" = "weather@example.iam.gserviceaccount.com"
    }
  }

  # Reach any other field of any composed object.
  composition = {
    patches = [{
      target = "deployment"
      type   = "strategic"
      patch  = <<-EOT
        spec:
          template:
            spec:
              priorityClassName: agents
      EOT
    }]
  }

  timeouts = { create = "5m" }
}

# An agent that runs elsewhere: it gets a Service, a card and labels, but no Deployment.
resource "kagenti_agent" "remote" {
  name      = "remote-planner"
  namespace = "team1"
  framework = "custom"
  endpoint  = "https://planner.example.com"
}

# An agent built on a stock A2A server, which does not sign its card: the platform's card signer
# runs beside it and signs the card with the pod's X509-SVID, so that the router's strict card
# verification binds the card to the agent's identity. Needs the provider's spire settings with
# workload_api_csi_driver (or workload_api_host_path).
resource "kagenti_agent" "writer" {
  name      = "writer"
  namespace = "team1"
  framework = "crewai"
  image     = "ghcr.io/example/writer:0.9.1"
  identity = {
    keycloak_client = {}
    card_signer     = {}
  }
}
