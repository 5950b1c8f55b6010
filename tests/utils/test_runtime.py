"""utils.runtime: the tools' process-wide CPU settings."""
import os

from utils import runtime


def test_onednn_cache_raised_unless_the_user_set_it(monkeypatch):
    monkeypatch.delenv('ONEDNN_PRIMITIVE_CACHE_CAPACITY', raising=False)
    runtime.tune_cpu_runtime()
    assert os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'] == str(runtime.ONEDNN_PRIMITIVE_CACHE)
    assert runtime.ONEDNN_PRIMITIVE_CACHE > 1024          # oneDNN's own default
    monkeypatch.setenv('ONEDNN_PRIMITIVE_CACHE_CAPACITY', '77')
    runtime.tune_cpu_runtime()
    assert os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'] == '77'
