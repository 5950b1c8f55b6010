"""Caches that cannot go stale: keyed by what they were built from, written atomically, never pickle.

A cache file holds its key (a hex digest of everything it was built from: file contents or stats, image set,
options, class list, format version). A load whose key differs returns None and the caller rebuilds and
overwrites. Files are .npz (read with ``allow_pickle=False``) or .json, written through utils.atomic.atomic_write
(a temporary file in the same folder moved into place with ``os.replace``, removed on failure; a full disk is
reported as 'no space left on device while writing PATH'), so a reader never sees half a file and a cache from
someone else cannot execute code. Every read and write of a cache also removes the temporary files that killed
writers left in its folder (utils.atomic.clean_stale_temps).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Iterable, Mapping, Optional

import numpy as np

from utils.atomic import atomic_write, clean_stale_temps

#: Bump when the layout of any cache changes; it is part of every key.
CACHE_FORMAT_VERSION = 3


def hash_files(paths: Iterable[str], h: Optional[Any] = None) -> str:
    """Hex digest over (path, content) of each file in order; a missing file hashes as '<missing>'."""
    h = h or hashlib.sha1()
    for p in paths:
        h.update(p.encode('utf-8', 'surrogateescape'))
        h.update(b'\0')
        try:
            with open(p, 'rb') as f:
                data = f.read()
            h.update(str(len(data)).encode())
            h.update(b'\0')
            h.update(data)
        except OSError:
            h.update(b'<missing>')
        h.update(b'\1')
    return h.hexdigest()


def stat_signature(paths: Iterable[str]) -> str:
    """Hex digest over (path, size, mtime_ns) of each path; cheap, for large files (images, .mat proposals)."""
    h = hashlib.sha1()
    for p in paths:
        try:
            st = os.stat(p)
            h.update('{}\0{}\0{}\1'.format(p, st.st_size, st.st_mtime_ns).encode('utf-8', 'surrogateescape'))
        except OSError:
            h.update('{}\0<missing>\1'.format(p).encode('utf-8', 'surrogateescape'))
    return h.hexdigest()


def dir_signature(folder: str) -> str:
    """Hex digest over the relative paths, sizes and mtimes of every file under a folder, subfolders included
    (e.g. JPEGImages/ with images in subfolders); symbolic links to folders are followed once."""
    h = hashlib.sha1()
    if not os.path.isdir(folder):
        return 'missing'
    seen = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        try:
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:  # a link loop
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
        except OSError:
            pass
        dirnames.sort()
        rel = os.path.relpath(dirpath, folder)
        for name in sorted(filenames):
            p = name if rel == '.' else os.path.join(rel, name)
            try:
                st = os.stat(os.path.join(dirpath, name))
                h.update('{}\0{}\0{}\1'.format(p, st.st_size, st.st_mtime_ns).encode('utf-8', 'surrogateescape'))
            except OSError:
                h.update('{}\0?\1'.format(p).encode('utf-8', 'surrogateescape'))
    return h.hexdigest()


def make_key(**parts: Any) -> str:
    """Hex digest of the JSON of ``parts`` plus CACHE_FORMAT_VERSION (parts must be JSON-serialisable)."""
    payload = json.dumps({'__version__': CACHE_FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha1(payload.encode('utf-8')).hexdigest()


def _clean(path: str) -> None:
    """Remove the temp files of killed writers beside ``path`` (never fails)."""
    try:
        clean_stale_temps(os.path.dirname(os.path.abspath(path)))
    except OSError:
        pass


def _atomic_write(path: str, write_fn) -> None:
    """utils.atomic.atomic_write (a cache is as readable as any file), after removing stale temp files."""
    _clean(path)
    atomic_write(path, write_fn, mode=0o666)


def atomic_save_npz(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` (.npz) atomically. Object arrays are refused (they would need pickle)."""
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise TypeError('cache array {!r} has dtype object; it would need pickle'.format(k))
    _atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_save_json(path: str, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    _atomic_write(path, lambda f: f.write(json.dumps(obj).encode('utf-8')))


def load_npz_if_key(path: str, key: str) -> Optional[Dict[str, np.ndarray]]:
    """The arrays of ``path`` if it exists, is readable without pickle and its '__key__' equals ``key``; else None."""
    _clean(path)
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if '__key__' not in z.files or str(z['__key__']) != key:
                return None
            return {k: z[k] for k in z.files}
    except Exception:  # a corrupt or foreign file is simply rebuilt
        return None


def save_npz_with_key(path: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """atomic_save_npz with the cache key stored as '__key__'."""
    arrays = dict(arrays)
    arrays['__key__'] = np.array(key)
    atomic_save_npz(path, arrays)


def load_json_if_key(path: str, key: str) -> Optional[Any]:
    """The 'data' of a JSON cache written by save_json_with_key if its key equals ``key``; else None."""
    _clean(path)
    if not os.path.exists(path):
        return None
    try:
        with open(path, 'r', encoding='utf-8') as f:
            obj = json.load(f)
        if not isinstance(obj, dict) or obj.get('__key__') != key:
            return None
        return obj['data']
    except Exception:
        return None


def save_json_with_key(path: str, key: str, data: Any) -> None:
    """atomic_save_json of {'__key__': key, 'data': data}."""
    atomic_save_json(path, {'__key__': key, 'data': data})
