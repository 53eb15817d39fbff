"""Connectors to external systems, each in its own subpackage and registered by entry point."""
