"""Fixtures for the text tests."""
