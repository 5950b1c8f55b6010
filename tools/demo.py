#!/usr/bin/env python
"""Detect objects in images with a trained Faster R-CNN snapshot and save pictures of the detections.

    tools/demo.py                          # the model `make demo` trained, on built-in test images
    tools/demo.py --net SNAPSHOT a.jpg dir/ --conf-thresh 0.5 --out output/demo
    tools/demo.py --net vgg16 data/demo     # the original's VGG16 (or zf) model, see fetch_faster_rcnn_models.sh

Headless: no window is opened. Folders are read non-recursively (hidden files skipped); an image given twice,
directly or through a folder, is processed once.

Where the pictures go (--out, default output/demo/): one picture per input, at the input's path relative to the
deepest folder that holds all the inputs. So `demo.py --out OUT dir/` writes OUT/<name> for each dir/<name>, and
`demo.py --out OUT a/img.jpg b/img.jpg` writes OUT/a/img.jpg and OUT/b/img.jpg. A .jpg/.jpeg/.png input keeps
its name; any other gets ".png" appended (x.bmp -> x.bmp.png). Two inputs never share an output: should two names
still collide (they differ only in letter case), the later one gets "-2" (then "-3", ...) before its extension.

Nothing is written over what is not demo.py's own. Before anything is drawn the run is refused (exit status 2)
when an output would be one of the inputs, or when --out already holds, at an output's path, a file that
demo.py did not draw (demo.py marks its pictures with a comment inside the file; the default folder
output/demo/ is demo.py's own, and pictures there are replaced). An earlier picture of demo.py is replaced.

When at least one picture was saved, --out also gets index.html: every picture of the run on one page (relative
links, in the order of the inputs, each with its input's name and its detections). It is replaced on each run;
an index.html in --out that demo.py did not write is refused like a picture.

An image that cannot be read or decoded, or a picture that cannot be written, is reported (one line naming the
file) and skipped; the other images are still processed and the exit status is then 1. Errors are one line,
`demo.py: message`: exit status 2 for a wrong command line, 1 for bad data or a failed write.
"""
import _init_paths  # noqa: F401

import argparse
import html
import os
import os.path as osp
import struct
import sys
import tempfile
import time
import urllib.parse
import zlib

import cv2
import numpy as np
import torch  # noqa: F401

PROG = 'demo.py'
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.tif', '.tiff')
KEEP_EXTS = ('.jpg', '.jpeg', '.png')            # written in the input's format; others get '.png' appended
DEFAULT_EXP = osp.join('faster_rcnn_end2end', 'shapes_trainval')
DEFAULT_PREFIX = 'tiny_faster_rcnn'
DEFAULT_IMDB = 'shapes_test'
DEFAULT_NUM_IMAGES = 8
#: The original's --net choices: its released VOC 2007 models (data/scripts/fetch_faster_rcnn_models.sh).
ORIGINAL_MODELS = {'vgg16': 'VGG16_faster_rcnn_final.caffemodel', 'zf': 'ZF_faster_rcnn_final.caffemodel'}
#: Written inside every picture (a JPEG COM segment, a PNG tEXt chunk): how demo.py knows a file is its own.
MARK = b'Drawn by py-faster-rcnn tools/demo.py'
MARK_SCAN = 4096                                  # the mark lies within a picture's first bytes
INDEX = 'index.html'
INDEX_MARK = '<!-- ' + MARK.decode('ascii') + ' -->'


class DemoError(Exception):
    """An error to report as one line `demo.py: message`, with exit status ``status``."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def shown(path):
    """A path as text that can always be printed: bytes that are not UTF-8 appear as \\xNN."""
    return os.fsencode(path).decode('utf-8', 'backslashreplace')


def warn(message):
    print('{}: {}'.format(PROG, message), file=sys.stderr, flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='\n\n'.join(__doc__.split('\n\n')[2:]))
    parser.add_argument('--net', dest='net', default=None, type=str,
                        help='snapshot (.pth), the original\'s .caffemodel, or vgg16 / zf for its released models '
                             'in data/faster_rcnn_models; default: the newest {}_iter_*.pth in output/{}'.format(
                                 DEFAULT_PREFIX, DEFAULT_EXP))
    parser.add_argument('--device', dest='device', default=None, type=str, help='cpu, cuda or cuda:N (default cpu)')
    parser.add_argument('--gpu', dest='gpu_id', default=None, type=int, help='GPU id (same as --device cuda:N)')
    parser.add_argument('--cpu', dest='cpu_mode', action='store_true', help='use the CPU (the default)')
    parser.add_argument('--conf-thresh', dest='conf_thresh', default=0.5, type=float,
                        help='draw detections with at least this score (default 0.5; the original used 0.8 '
                             'with its VGG16/ZF models)')
    parser.add_argument('--nms-thresh', dest='nms_thresh', default=0.3, type=float, help='per-class NMS (0.3)')
    parser.add_argument('--out', dest='out', default=None, type=str,
                        help='output folder (default output/demo); see below for the names')
    parser.add_argument('--threads', dest='threads', type=int, default=None,
                        help='CPU threads for torch (default: all cores)')
    parser.add_argument('--cfg', dest='cfg_file', default=None, type=str, help='optional config file')
    parser.add_argument('--set', dest='set_cfgs', default=None, nargs=argparse.REMAINDER, help='set config keys')
    parser.add_argument('inputs', nargs='*', help='image files or folders (default: built-in test images)')
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error('--threads must be at least 1, got {}'.format(args.threads))
    return args


def default_snapshot(root):
    """The newest snapshot `make demo` wrote, or None."""
    folder = osp.join(root, 'output', DEFAULT_EXP)
    found = []
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    for name in names:
        if name.startswith(DEFAULT_PREFIX + '_iter_') and name.endswith('.pth'):
            try:
                found.append((int(name[len(DEFAULT_PREFIX) + 6:-4]), osp.join(folder, name)))
            except ValueError:
                continue
    return max(found)[1] if found else None


# ------------------------------------------------------------------------------------------------ inputs
def _identity(path):
    """(st_dev, st_ino) of the file at path (symbolic links followed), or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def collect_images(inputs):
    """Image paths from files and (non-recursively) folders, in the order given (folders sorted by name).

    A file named on the command line is taken whatever its extension; in a folder, the non-hidden entries with an
    image extension that are not folders. Each file once (the first time it is met). Raises DemoError (status
    2) for an input that does not exist, (status 1) for a folder that cannot be listed."""
    paths, seen = [], set()

    def add(p):
        key = _identity(p) or ('path', osp.abspath(p))
        if key not in seen:
            seen.add(key)
            paths.append(p)

    for item in inputs:
        if osp.isdir(item):
            try:
                names = sorted(os.listdir(item))
            except OSError as e:
                raise DemoError('cannot list folder {}: {}'.format(shown(item), e.strerror or e)) from None
            found = [osp.join(item, n) for n in names
                     if not n.startswith('.') and n.lower().endswith(IMAGE_EXTS) and not osp.isdir(osp.join(item, n))]
            if not found:
                warn('warning: no images in folder {}'.format(shown(item)))
            for p in found:
                add(p)
        elif osp.lexists(item):
            add(item)
        else:
            raise DemoError('no such image or folder: {}'.format(shown(item)), status=2)
    return paths


def read_image(path):
    """(BGR uint8 image, None), or (None, reason) when the file cannot be read or decoded as an image.

    Reads the bytes with Python and decodes them with cv2.imdecode, so any file name works (cv2.imread takes
    a UTF-8 string and crashes on some others)."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        return None, 'cannot read {}: {}'.format(shown(path), e.strerror or e)
    im = None
    if data:
        try:
            im = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:
            im = None
    if im is None:
        return None, 'cannot decode {} as an image ({} bytes)'.format(shown(path), len(data))
    return im, None


# ------------------------------------------------------------------------------------------------ outputs
def output_names(images):
    """The output path of each image, relative to the output folder (see the module's docstring).

    Paths relative to the deepest folder holding every input; .jpg/.jpeg/.png names kept, others + '.png';
    names equal but for letter case get '-2', '-3', ... before the extension (the first keeps its name). No two
    results are equal, even ignoring case."""
    if not images:
        return []
    dirs = [osp.dirname(osp.abspath(p)) for p in images]
    base = osp.commonpath(dirs)
    rels = []
    for p in images:
        head, name = osp.split(osp.relpath(osp.abspath(p), base))
        if not name.lower().endswith(KEEP_EXTS):
            name += '.png'
        rels.append(osp.join(head, name))

    def key(r):
        return r.casefold()

    natural = {key(r) for r in rels}
    used, out = set(), []
    for r in rels:
        if key(r) not in used:
            used.add(key(r))
            out.append(r)
            continue
        stem, ext = osp.splitext(r)
        n = 2
        while key('{}-{}{}'.format(stem, n, ext)) in used | natural:
            n += 1
        r = '{}-{}{}'.format(stem, n, ext)
        used.add(key(r))
        out.append(r)
    return out


def output_path_for(images, out_dir):
    """The absolute output path of each image in ``images`` under ``out_dir``."""
    return [osp.join(osp.abspath(out_dir), r) for r in output_names(images)]


def is_demo_picture(path):
    """Whether the file at path carries demo.py's mark (False when it cannot be read)."""
    try:
        with open(path, 'rb') as f:
            return MARK in f.read(MARK_SCAN)
    except OSError:
        return False


def check_outputs(images, targets, own_folder=False):
    """Raise DemoError (status 2) when an output would be an input, or (unless own_folder) a file at an output's
    path that demo.py did not draw. Checked before anything is written."""
    inputs = {}
    for p in images:
        ident = _identity(p)
        if ident is not None:
            inputs.setdefault(ident, p)
    problems = []
    first = {}
    for p, dst in zip(images, targets):
        real = osp.realpath(dst).casefold()       # two outputs that meet through a linked folder
        if real in first:
            problems.append('{} and {} (the pictures of {} and {}) are the same file'.format(
                shown(first[real][1]), shown(dst), shown(first[real][0]), shown(p)))
        first.setdefault(real, (p, dst))
        if not osp.lexists(dst):
            continue
        ident = _identity(dst)
        if ident is not None and ident in inputs:
            problems.append('{} would overwrite the input {}'.format(shown(dst), shown(inputs[ident])))
        elif osp.isdir(dst):
            problems.append('{} (the picture of {}) is a folder'.format(shown(dst), shown(p)))
        elif not own_folder and not is_demo_picture(dst):
            problems.append('{} (the picture of {}) exists and was not drawn by {}'.format(shown(dst), shown(p),
                                                                                        PROG))
    if problems:
        more = ' (and {} more)'.format(len(problems) - 3) if len(problems) > 3 else ''
        raise DemoError('refusing to write: {}{}; choose another --out'.format('; '.join(problems[:3]), more),
                        status=2)


def mark_picture(data, ext):
    """The encoded picture ``data`` with demo.py's MARK inserted (a JPEG comment, a PNG tEXt chunk)."""
    if ext in ('.jpg', '.jpeg') and data[:2] == b'\xff\xd8':
        at = 2
        if data[2:4] == b'\xff\xe0':                  # JFIF's APP0 must stay first
            at = 4 + struct.unpack('>H', data[4:6])[0]
        return data[:at] + b'\xff\xfe' + struct.pack('>H', len(MARK) + 2) + MARK + data[at:]
    if ext == '.png' and data[:8] == b'\x89PNG\r\n\x1a\n':
        at = 8 + 8 + struct.unpack('>I', data[8:12])[0] + 4   # after IHDR
        body = b'Software\x00' + MARK
        chunk = struct.pack('>I', len(body)) + b'tEXt' + body + struct.pack('>I', zlib.crc32(b'tEXt' + body))
        return data[:at] + chunk + data[at:]
    return data


def save_picture(path, im):
    """Write ``im`` to ``path`` (format from its extension, marked as demo.py's), creating its folder.

    Written to a temporary file beside it and renamed over it, so a failed write leaves no half picture.
    Raises DemoError naming the path when the folder cannot be made, the picture cannot be encoded or the
    file cannot be written."""
    folder = osp.dirname(osp.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        why = 'a file is in the way' if isinstance(e, FileExistsError) else e.strerror or e
        raise DemoError('cannot create folder {}: {}'.format(shown(folder), why)) from None
    ext = osp.splitext(path)[1].lower()
    ok, buf = cv2.imencode(ext, im)
    if not ok or buf is None:
        raise DemoError('cannot encode the picture {} as {}'.format(shown(path), ext))
    data = mark_picture(buf.tobytes(), ext)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.tmp-', dir=folder)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)              # mkstemp makes it private; a picture is not
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise DemoError('cannot write {}: {}'.format(shown(path), e.strerror or e)) from None


def index_html(entries, title):
    """index.html's text: ``entries`` are (picture path relative to the index, input path, [(class, score, box)]).
    Links are relative and percent-encoded (any file name), names HTML-escaped."""
    rows = []
    for rel, src, found in entries:
        href = urllib.parse.quote(os.fsencode(rel).replace(os.sep.encode(), b'/'))
        dets = ', '.join('{} {:.3f}'.format(c, s) for c, s, _ in found) or 'no detections'
        rows.append('<figure><a href="{0}"><img src="{0}" alt="{1}" loading="lazy"></a>'
                    '<figcaption><b>{1}</b><br>{2}<br><small>{3}</small></figcaption></figure>'.format(
                        href, html.escape(shown(rel)), html.escape(dets), html.escape(shown(src))))
    return '\n'.join([
        '<!DOCTYPE html>', INDEX_MARK, '<html><head><meta charset="utf-8"><title>{}</title>'.format(
            html.escape(title)),
        '<style>body{font-family:sans-serif}figure{display:inline-block;vertical-align:top;margin:6px;'
        'max-width:420px}img{max-width:400px;max-height:400px;border:1px solid #ccc}</style></head><body>',
        '<h1>{}</h1>'.format(html.escape(title)), '<p>{} pictures</p>'.format(len(entries))] + rows
        + ['</body></html>', ''])


def is_demo_index(path):
    """Whether the file at path is an index.html that demo.py wrote."""
    try:
        with open(path, 'rb') as f:
            return INDEX_MARK.encode('ascii') in f.read(MARK_SCAN)
    except OSError:
        return False


def write_index(out_dir, entries, title):
    """Write out_dir/index.html atomically; raises DemoError naming it when it cannot be written."""
    from utils.atomic import atomic_write
    path = osp.join(out_dir, INDEX)
    data = index_html(entries, title).encode('utf-8')
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as e:
        raise DemoError('cannot write {}: {}'.format(shown(path), e.strerror or e)) from None
    return path


# ------------------------------------------------------------------------------------------------ detection
def detect_and_draw(net, cfg, classes, im, conf_thresh, nms_thresh):
    """Returns (picture with the boxes drawn, [(class, score, box)], seconds, number of proposals)."""
    from fast_rcnn.test import detections_for_image, draw_box, im_detect
    t0 = time.time()
    scores, boxes = im_detect(net, im, None, cfg)
    dt = time.time() - t0
    dets = detections_for_image(scores, boxes, len(classes), conf_thresh, nms_thresh, 0, cfg)
    vis = im.copy()
    found = []
    palette = [(0, 0, 255), (0, 160, 0), (255, 0, 0), (0, 140, 255), (200, 0, 200), (160, 160, 0)]
    for j in range(1, len(classes)):
        for d in dets[j]:
            if d[4] < conf_thresh:
                continue
            draw_box(vis, d[:4], '{:s} {:.3f}'.format(classes[j], float(d[4])), palette[(j - 1) % len(palette)])
            found.append((classes[j], float(d[4]), [float(x) for x in d[:4]]))
    return vis, found, dt, scores.shape[0]


def _load(args, root):
    from fast_rcnn.config import ConfigError
    from fast_rcnn.test import load_detector, resolve_device
    net_path = args.net or default_snapshot(root)
    if args.net in ORIGINAL_MODELS and not osp.exists(args.net):
        net_path = args.net = osp.join(root, 'data', 'faster_rcnn_models', ORIGINAL_MODELS[args.net])
        if not osp.isfile(net_path):
            raise DemoError('{}: no such file (data/scripts/fetch_faster_rcnn_models.sh downloads the original\'s '
                            'models)'.format(shown(net_path)), status=2)
    if net_path is None:
        raise DemoError('no trained model found in output/{} -- run `make demo` (or tools/train_net.py) first, '
                        'or pass --net SNAPSHOT'.format(DEFAULT_EXP))
    if args.net and not osp.isfile(args.net):
        raise DemoError('--net {}: no such file'.format(shown(args.net)), status=2)
    try:
        device = resolve_device('cpu' if args.cpu_mode else args.device, args.gpu_id)
    except (RuntimeError, ValueError) as e:
        raise DemoError(str(e), status=2) from None
    try:
        net, cfg, classes = load_detector(net_path, [args.cfg_file] if args.cfg_file else [],
                                          args.set_cfgs or [], device)
    except ConfigError as e:
        raise DemoError(str(e), status=2) from None
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        msg = str(e).strip() or type(e).__name__
        raise DemoError(msg if net_path in msg else 'cannot load {}: {}'.format(shown(net_path), msg)) from None
    return net_path, net, cfg, classes


def run(args):
    """The demo; returns the exit status (raises DemoError for errors that stop it before any picture)."""
    from utils.runtime import tune_cpu_runtime
    tune_cpu_runtime()
    from fast_rcnn.config import cfg as global_cfg
    root = global_cfg.ROOT_DIR
    if args.threads:
        torch.set_num_threads(args.threads)

    default_out = osp.join(root, 'output', 'demo')
    out_dir = osp.abspath(args.out or default_out)
    own_folder = osp.realpath(out_dir) == osp.realpath(default_out)
    if args.inputs:
        images = collect_images(args.inputs)
        if not images:
            raise DemoError('no images to process', status=2)
    net_path, net, cfg, classes = _load(args, root)
    print('Loaded network {:s} ({}, classes: {})'.format(shown(net_path), net.net_name, ', '.join(classes[1:])))
    if not args.inputs and net_path.lower().endswith('.caffemodel'):
        images = collect_images([osp.join(root, 'data', 'demo')]) if osp.isdir(osp.join(root, 'data', 'demo')) else []
        if not images:
            raise DemoError("the original's models detect VOC classes: give images (or folders) to run them on, "
                            "e.g. the original's data/demo/*.jpg", status=2)
    elif not args.inputs:
        from datasets.factory import get_imdb
        imdb = get_imdb(DEFAULT_IMDB, cfg)
        images = [imdb.image_path_at(i) for i in range(min(DEFAULT_NUM_IMAGES, imdb.num_images))]
        if not images:
            raise DemoError('no images to process')
    targets = output_path_for(images, out_dir)
    check_outputs(images, targets, own_folder)
    index = osp.join(out_dir, INDEX)
    if osp.lexists(index) and (osp.isdir(index) or not (own_folder or is_demo_index(index))):
        raise DemoError('refusing to write: {} exists and was not written by {}; choose another --out'.format(
            shown(index), PROG), status=2)
    if osp.lexists(out_dir) and not osp.isdir(out_dir):
        raise DemoError('--out {} exists and is not a folder'.format(shown(out_dir)), status=2)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise DemoError('cannot create the output folder {}: {}'.format(shown(out_dir), e.strerror or e)) from None

    failed, saved = [], []
    for path, dst in zip(images, targets):
        im, why = read_image(path)
        if im is None:
            warn('warning: {}, skipped'.format(why))
            failed.append(path)
            continue
        try:
            vis, found, dt, n = detect_and_draw(net, cfg, classes, im, args.conf_thresh, args.nms_thresh)
        except (RuntimeError, ValueError, cv2.error) as e:
            warn('warning: detection failed on {}: {}, skipped'.format(shown(path), str(e).strip().splitlines()[0]
                                                                       if str(e).strip() else type(e).__name__))
            failed.append(path)
            continue
        print('~' * 60)
        print('Demo for {:s}: detection took {:.3f}s for {:d} object proposals'.format(shown(path), dt, n))
        for cls, score, box in found:
            print('  {:s} {:.3f} [{:.1f}, {:.1f}, {:.1f}, {:.1f}]'.format(cls, score, *box))
        try:
            save_picture(dst, vis)
        except DemoError as e:
            warn('error: {}'.format(e))
            failed.append(path)
            continue
        print('  wrote {:s}'.format(shown(dst)))
        saved.append((osp.relpath(dst, out_dir), path, found))
    done = len(images) - len(failed)
    index_failed = False
    if saved:
        try:
            print('Index of the pictures: {}'.format(shown(write_index(
                out_dir, saved, 'Detections of {}'.format(osp.basename(net_path))))))
        except DemoError as e:
            warn('error: {}'.format(e))
            index_failed = True
    if failed:
        warn('{} of {} images failed (see above); {} pictures saved in {}'.format(len(failed), len(images), done,
                                                                                  shown(out_dir)))
        return 1
    if index_failed:
        return 1
    print('Pictures saved in {:s}'.format(shown(out_dir)))
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except DemoError as e:
        warn(str(e))
        return e.status


if __name__ == '__main__':
    sys.exit(main())
