"""Persons, episodes (one hospitalisation), document intake and the coverage registry."""
