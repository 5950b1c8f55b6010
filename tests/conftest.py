"""Put lib/ on sys.path exactly as tools/_init_paths.py does, and expose the oracle fixtures."""
import copy
import os.path as osp
import sys

import pytest

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, osp.join(ROOT, 'tools'))
import _init_paths  # noqa: E402,F401  (the same code the tools run)

# hypothesis float strategies here say allow_subnormal=False: utils.runtime turns on flush-to-zero, after which
# hypothesis refuses to draw subnormals (FloatingPointError) in whichever test runs next.
ORACLE_DIR = osp.abspath(osp.join(ROOT, '..', 'shared', 'oracle'))


@pytest.fixture(scope='session')
def oracle_dir():
    """Folder of fixtures made by running the original's code; tests that need it skip when it is absent."""
    if not osp.isdir(ORACLE_DIR):
        pytest.skip('../shared/oracle is not beside this checkout')
    return ORACLE_DIR


@pytest.fixture
def cfg_copy(monkeypatch):
    """A private cfg for the test (restored after), installed as the tools' global cfg (fast_rcnn.config.cfg) and
    as the defaults that lib falls back to when it is given no cfg (fast_rcnn.config._DEFAULTS), so that tests
    can point DATA_DIR somewhere else. That the tools hand their cfg down is checked by the command-line tests,
    which pass --set DATA_DIR."""
    import fast_rcnn.config as config
    c = copy.deepcopy(config.cfg)
    monkeypatch.setattr(config, 'cfg', c)
    monkeypatch.setattr(config, '_DEFAULTS', c)
    return c


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: a test that runs a tool end to end (seconds to minutes); '
                                       '`pytest -m "not slow"` skips them, `make test` runs everything')
