# An example environment: three agents of different frameworks and two MCP tools in one
# namespace. Apply it against the sandbox (`make sandbox-up`, then source its env file) or any
# cluster with the namespace `team1`.
terraform {
  required_providers {
    kagenti = {
      source = "kagenti/kagenti"
    }
  }
}

provider "kagenti" {}

variable "namespace" {
  type    = string
  default = "team1"
}

resource "kagenti_tool" "weather" {
  name      = "weather-tool"
  namespace = var.namespace
  image     = "ghcr.io/example/weather-tool:0.3.1"
}

resource "kagenti_tool" "search" {
  name      = "search-tool"
  namespace = var.namespace
  image     = "ghcr.io/example/search-tool:1.0.0"
  transport = "sse"
}

resource "kagenti_agent" "weather" {
  name        = "weather-service"
  namespace   = var.namespace
  framework   = "langgraph"
  image       = "ghcr.io/example/weather-service:1.4.0"
  description = "Answers questions about the weather"
  skills      = [{ id = "forecast", name = "Forecast", tags = ["weather"] }]
  tools       = [kagenti_tool.weather.id]
  llm         = { base_url = "http://ollama:11434/v1", model = "llama3.2:3b" }
}

resource "kagenti_agent" "research" {
  name        = "research"
  namespace   = var.namespace
  framework   = "crewai"
  image       = "ghcr.io/example/research-crew:0.9.0"
  description = "Researches a topic with a crew of agents"
  skills      = [{ id = "research", name = "Research", tags = ["web"] }]
  tools       = [kagenti_tool.search.id, kagenti_tool.weather.id]
  replicas    = 2
}

resource "kagenti_agent" "summarizer" {
  name        = "summarizer"
  namespace   = var.namespace
  framework   = "beeai"
  protocol    = "acp"
  image       = "ghcr.io/example/summarizer:2.1.0"
  description = "Summarizes documents"
  persistence = { size = "1Gi" }
}

output "agents" {
  value = {
    for a in [kagenti_agent.weather, kagenti_agent.research, kagenti_agent.summarizer] :
    a.name => { url = a.url, ready = a.ready_replicas }
  }
}

output "tools" {
  value = { for t in [kagenti_tool.weather, kagenti_tool.search] : t.name => t.url }
}
