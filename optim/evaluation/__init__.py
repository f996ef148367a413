"""Measurement: one place, the same for every candidate."""
