"""Typed configuration and table schemas shared by every step."""
