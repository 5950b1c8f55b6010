"""Fixtures for the roi_data_layer tests."""
import copy

import pytest


@pytest.fixture
def cfg_copy(monkeypatch):
    """A private copy of the global cfg installed as fast_rcnn.config.cfg for the test (restored after)."""
    import fast_rcnn.config as config
    c = copy.deepcopy(config.cfg)
    monkeypatch.setattr(config, 'cfg', c)
    return c
