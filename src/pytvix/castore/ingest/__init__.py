"""Importing file trees into castore (free functions over the services)."""
