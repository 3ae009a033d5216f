# An identity is imported by the id of its SPIRE registration entry
# (`spire-server entry show -spiffeID spiffe://example.org/ns/team1/sa/weather-service`).
# The Keycloak client named by the entry's SPIFFE ID is found and read along with it.
terraform import kagenti_identity.weather_agent 6b2f5c0e-8d4a-4a8e-9f55-1f0d5c6a7b21

# Or by its Keycloak client id, which is the SPIFFE ID.
terraform import kagenti_identity.weather_agent spiffe://example.org/ns/team1/sa/weather-service
