# A platform is imported by its namespace.
terraform import kagenti_platform.main kagenti-system
