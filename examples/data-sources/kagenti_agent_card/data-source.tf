data "kagenti_agent_card" "weather" {
  router_url = "https://agents.example.com"
  namespace  = "team1"
  name       = "weather-service"
}

output "weather_endpoint" {
  value = data.kagenti_agent_card.weather.url
}
