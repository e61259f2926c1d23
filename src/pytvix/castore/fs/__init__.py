"""A read-only FUSE file system over the castore services (PROTOCOL.md §5)."""
