"""Command-line entry points (`tvix-store`, `nar-bridge`). The only place that reads env vars."""
