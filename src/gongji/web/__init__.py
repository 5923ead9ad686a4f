"""Templates and static assets of the web pages."""
