"""The small layer every package may import: user errors, registries, tensor hashing.

`datasets/` and `models/` never import `ssd/`; what they share with it lives here
(`ssd.errors` and `ssd.registry` re-export these names for the rest of the code).
"""
