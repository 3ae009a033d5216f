data "kagenti_tools" "team1" {
  namespace = "team1"
}

# Give an agent every MCP tool of team1.
resource "kagenti_agent" "assistant" {
  name      = "assistant"
  namespace = "team1"
  framework = "langgraph"
  image     = "ghcr.io/example/assistant:1.0.0"
  tools     = [for t in data.kagenti_tools.team1.items : t.id]
}
