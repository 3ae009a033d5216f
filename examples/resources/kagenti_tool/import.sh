# A tool is imported by <namespace>/<name>.
terraform import kagenti_tool.search team1/search
