"""See kmm/generators/__init__.py."""
