"""Put lib/ on sys.path exactly as tools/_init_paths.py does, and expose the oracle fixtures."""
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


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: a test that runs a tool end to end (seconds to minutes); '
                                       '`pytest -m "not slow"` skips them, `make test` runs everything')
