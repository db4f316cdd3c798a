"""Bringing the graph up: its description, the project's runner, and run records."""
