# Agents someone else deployed: wire to every weather agent in team1.
data "kagenti_agents" "weather" {
  namespace = "team1"
  skill_tag = "weather"
}

output "weather_agents" {
  value = { for a in data.kagenti_agents.weather.items : a.id => a.url }
}
