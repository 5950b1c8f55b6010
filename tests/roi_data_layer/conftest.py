"""Fixtures for the roi_data_layer tests (cfg_copy: tests/conftest.py)."""
