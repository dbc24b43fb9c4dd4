"""The name → object registry (defined in harness.registry, shared with datasets/ and models/)."""

from harness.registry import Registry

__all__ = ["Registry"]
