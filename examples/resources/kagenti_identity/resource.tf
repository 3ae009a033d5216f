# The UI calls the weather agent; the weather agent calls the weather tool. Each hop's token is
# exchanged for one whose audience is the next hop, and only listed callers may get one.
resource "kagenti_identity" "ui" {
  namespace       = "team1"
  service_account = "ui"
  keycloak_client = {
    token_exchange = true
  }
}

resource "kagenti_identity" "weather_agent" {
  namespace       = "team1"
  service_account = "weather-service"
  x509_svid_ttl   = "1h"
  jwt_svid_ttl    = "5m"
  keycloak_client = {
    authentication  = "federated-jwt" # the workload's JWT-SVID is its client assertion
    token_exchange  = true
    allowed_callers = [kagenti_identity.ui.keycloak_client_id]
  }
}

resource "kagenti_identity" "weather_tool" {
  namespace       = "team1"
  service_account = "weather-tool"
  keycloak_client = {
    allowed_callers = [kagenti_identity.weather_agent.keycloak_client_id]
  }
}
