"""Call media core (placeholder docstring)."""
