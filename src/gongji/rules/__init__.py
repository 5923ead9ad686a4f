"""Statutory settlement as rules-as-code: parameters (YAML), layer formulas, the cascade."""
