"""Hardware: what this machine has (:mod:`~optim.hardware.detect`), device profiles measured on it
(:mod:`~optim.hardware.profiles`) and a catalog of target devices with roofline estimates
(:mod:`~optim.hardware.catalog`).

The experiment runner adds ``profiles.profile_columns(candidate, ctx)`` (measured) and
``profiles.catalog_columns(macs, size_bytes, input_bytes)`` (estimated) to every result row.
"""
