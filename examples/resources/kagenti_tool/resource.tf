resource "kagenti_tool" "search" {
  name      = "search"
  namespace = "team1"
  image     = "ghcr.io/example/search-tool:1.0.0"
  transport = "sse"
  port      = 8080
  autoscaling = {
    min_replicas           = 2
    max_replicas           = 6
    target_cpu_utilization = 70
  }
  secret_env = { SEARCH_API_KEY = { secret = "search", key = "apikey" } }
  # Only the router may call it (its NetworkPolicy); it calls out to the search API over HTTPS
  # besides the router and DNS.
  network_policy = {
    egress = [{ port = 443 }]
  }
}
