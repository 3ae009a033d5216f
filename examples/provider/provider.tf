# Every setting may also come from the environment (KUBECONFIG, KUBE_*, KAGENTI_SPIRE_ADDRESS,
# KAGENTI_SPIRE_X509_SVID_FILE, KAGENTI_KEYCLOAK_URL, ...); a backend left unset is simply not
# used, and plans contact a backend only to read state.
provider "kagenti" {
  kubernetes {
    config_path    = "~/.kube/config"
    config_context = "prod"
  }

  # On the SPIRE server's host: address = "unix:///run/spire/server/private/api.sock".
  # From a CI runner: the server API over TCP, as an admin X509-SVID (one of its admin_ids).
  # Or, with the SPIRE Controller Manager: registration = "kubernetes" and trust_domain only.
  spire {
    address            = "spire-server.example.com:8081"
    trust_domain       = "example.org"
    x509_svid_file     = "svid/svid.pem"
    x509_svid_key_file = "svid/key.pem"
    bundle_file        = "svid/bundle.pem"
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
