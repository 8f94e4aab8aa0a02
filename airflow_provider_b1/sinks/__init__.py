"""Sinks shared by several flows."""
