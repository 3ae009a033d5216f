# Every setting may also come from the environment (KUBECONFIG, KUBE_*, KAGENTI_SPIRE_ADDRESS,
# KAGENTI_KEYCLOAK_URL, ...); a backend left unset is simply not used.
provider "kagenti" {
  kubernetes {
    config_path    = "~/.kube/config"
    config_context = "prod"
  }

  spire {
    address      = "unix:///run/spire/server/private/api.sock"
    trust_domain = "example.org"
  }

  keycloak {
    url = "https://keycloak.example.com"
    # The realm that holds agent and tool clients, and the realm the client logs in to
    # (keycloak/keycloak's provider calls the latter `realm`).
    managed_realm = "kagenti"
    auth_realm    = "master"
    client_id     = "terraform"
    client_secret = var.keycloak_client_secret
    # Keycloak behind a private CA.
    root_ca_certificate = file("${path.module}/keycloak-ca.pem")
  }
}

variable "keycloak_client_secret" {
  type      = string
  sensitive = true
}
