"""Fixtures for the clip tests."""
