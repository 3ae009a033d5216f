# An agent is imported by <namespace>/<name>.
terraform import kagenti_agent.weather team1/weather-service
