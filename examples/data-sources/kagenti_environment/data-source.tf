data "kagenti_environment" "current" {}

output "kubernetes_version" {
  value = data.kagenti_environment.current.kubernetes.version
}

output "keycloak_issuer" {
  value = data.kagenti_environment.current.keycloak.issuer
}
