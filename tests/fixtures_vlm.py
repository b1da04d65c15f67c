"""Fixtures for the vlm tests."""
