# The quickstart environment: run it with `make demo`, which starts a local sandbox and sets
# KUBECONFIG, KAGENTI_SPIRE_* and KAGENTI_KEYCLOAK_* for the provider.
terraform {
  required_providers {
    kagenti = {
      source = "kagenti/kagenti"
    }
  }
}

provider "kagenti" {}

data "kagenti_environment" "current" {}

output "kubernetes" {
  value = data.kagenti_environment.current.kubernetes
}

output "spire_trust_domain" {
  value = data.kagenti_environment.current.spire.trust_domain
}

output "spire_jwt_keys" {
  value = [for k in jsondecode(data.kagenti_environment.current.spire.bundle_jwks).keys : k.kid if k.use == "jwt-svid"]
}

output "keycloak" {
  value = data.kagenti_environment.current.keycloak
}
