# Every setting may also come from the environment (KUBECONFIG, KAGENTI_SPIRE_ADDRESS,
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
    url           = "https://keycloak.example.com"
    realm         = "kagenti"
    client_id     = "terraform"
    client_secret = var.keycloak_client_secret
  }
}

variable "keycloak_client_secret" {
  type      = string
  sensitive = true
}
