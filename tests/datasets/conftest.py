"""Fixtures for the dataset tests (cfg_copy: tests/conftest.py)."""
