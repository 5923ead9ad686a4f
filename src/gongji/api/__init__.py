"""HTTP application: app factory, authentication, shared dependencies, problem+json errors."""
