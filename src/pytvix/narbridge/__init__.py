"""nar-bridge: an HTTP Nix binary cache over the store (PROTOCOL.md §4.7)."""
