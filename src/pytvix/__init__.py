"""pytvix: a content-addressed store, wire-compatible with tvix-castore and tvix-store."""

__version__ = "0.1.0"
