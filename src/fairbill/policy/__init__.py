"""The policy language: typed clauses loaded from YAML (see ``model``)."""
