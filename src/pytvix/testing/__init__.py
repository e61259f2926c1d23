"""Fixtures and contract test classes shipped with pytvix, so other backends can reuse them."""
