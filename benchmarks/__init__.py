"""Reproducible performance measurements, each compared with a baseline in the same run."""
