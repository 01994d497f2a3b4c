"""ganzoo's built-in plugins, each written against the public plugin API and registered by entry point."""
