#!/usr/bin/env python
"""Generate 'glyphs', a second synthetic detection dataset, as a folder laid out like one labelled with labelImg.

    python data/scripts/make_glyphs.py OUT_DIR [--seed 7] [--num-trainval 600] [--num-test 300] [--workers 2]

It exists so that the training recipe is not tuned to the built-in 'shapes' dataset alone: the classes, the
backgrounds, the image sizes and the file formats all differ from it. Load it with get_imdb('OUT_DIR:trainval')
and get_imdb('OUT_DIR:test').

Content
  * 5 classes: heart, arrow, crescent, hexagon, bolt (a lightning bolt): filled anti-aliased polygons with a
    little per-instance variation of their proportions. Arrows are rotated by any angle, the others by up to
    +-30 degrees (crescents and bolts are also mirrored at random); aspect 0.8-1.25; longer side of the box
    from 18 px up to 70% of the image's shorter side (mostly log-uniform).
  * 1-6 objects an image, drawn one after another. They may overlap, but an object already drawn keeps at
    least 40% of its pixels visible; about a fifth of the objects are placed across the border.
  * Object fill: a solid colour, a two-colour linear gradient or speckle noise, sometimes with a thin outline.
    Colours come from one pool shared by every class, and each fill is retried until it contrasts with what
    lies beneath it, and with each object it overlaps (mean BGR distance > 50, and > 30 on 75% of its
    pixels); a glyph for which no fill does is placed elsewhere.
  * Backgrounds: a sky/ground split with a blurred, hilly horizon; muted rectangles; Gaussian-blurred value
    noise of 2-3 octaves; tiled wood-like planks; plus soft ellipses, uneven lighting, small random text
    strings and thin polylines (distractors that are not classes), pixel noise and JPEG-like artefacts.
  * Images are 320-640 wide and 240-480 high (independently); about a third are PNG, the rest JPEG of
    quality 85-95.

Layout (what labelImg writes into a Pascal VOC folder; there is no classes.txt, so the loader finds the class
names in the XML files)
    OUT_DIR/Annotations/img_0001.xml          labelImg's Pascal VOC XML, tab-indented
    OUT_DIR/JPEGImages/img_0001.jpg|.png
    OUT_DIR/ImageSets/Main/trainval.txt, test.txt   ids one per line (trainval first, then test)

Boxes are 1-based inclusive integer pixel coordinates (VOC): the tight box of the pixels where the object
still covers at least half of the pixel after the objects drawn later and after the image border.
truncated=1 when the border cuts the object; difficult=1 when less than 50% of the object is visible or its
box is smaller than 10 px on its longer side.

Each image has its own numpy RandomState seeded from (seed, split, index) through np.random.SeedSequence,
so the output depends on the seed only (not on --workers). The folder is generated in a temporary sibling
folder and renamed into place at the end; an OUT_DIR that exists and is not empty is refused, untouched (exit
status 2, one line `make_glyphs.py: message` naming it and what is in it); a failed write: exit status 1.
"""
from __future__ import annotations

import argparse
import colorsys
import math
import multiprocessing
import os
import os.path as osp
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

import cv2
import numpy as np

CLASSES: Tuple[str, ...] = ('heart', 'arrow', 'crescent', 'hexagon', 'bolt')
SPLITS: Tuple[Tuple[str, int], ...] = (('trainval', 0), ('test', 1))  # (name, code used in the seed)
MIN_SIZE = 18.0             # smallest longer side of an object's (unclipped) box, px
MAX_SIZE_FRAC = 0.7         # largest longer side, as a fraction of the image's shorter side
KEEP_VISIBLE = 0.4          # an object already drawn keeps at least this fraction of its in-image pixels
DIFFICULT_VISIBLE = 0.5     # difficult when less than this fraction of the object is visible
DIFFICULT_SIZE = 10         # ... or when its box is smaller than this on its longer side (px)
MIN_CONTRAST = 50.0         # mean BGR distance between an object's fill and what lies beneath it
TEXT_CHARS = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789-+.:/#%'
FONTS: Tuple[int, ...] = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX,
                          cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)

Window = Tuple[slice, slice]


class GlyphObject(NamedTuple):
    """One annotated object: class name, 1-based inclusive box (xmin, ymin, xmax, ymax) and the VOC flags."""
    name: str
    box: Tuple[int, int, int, int]
    truncated: int
    difficult: int


class Task(NamedTuple):
    """One image to generate (picklable, for the worker processes)."""
    split: str
    split_code: int
    index: int
    image_id: str
    seed: int
    work_dir: str    # where the files are written now
    final_dir: str   # where the folder will be (for <path>)


class ImageResult(NamedTuple):
    image_id: str
    split: str
    objects: Tuple[GlyphObject, ...]


@dataclass
class Placed:
    """An object drawn into the image, on its own unclipped canvas whose top-left pixel is (x0, y0)."""
    name: str
    x0: int
    y0: int
    alpha: np.ndarray   # float32 (h, w): the object's coverage (fill and outline)
    vis: np.ndarray     # float32 (h, w): coverage still visible in the image (0 outside the image)
    full_count: int     # pixels with alpha >= 0.5
    inimg_count: int    # of those, pixels inside the image
    vis_count: int      # pixels with vis >= 0.5
    truncated: bool


# ----------------------------------------------------------------------------------------------------------
# colours and small helpers

def hsv_colour(h: float, s: float, v: float) -> np.ndarray:
    """A BGR float32 colour (0-255) from hue (cycles of 1), saturation and value in [0, 1]."""
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return np.array([b, g, r], np.float32) * 255.0


def muted_colour(rs: np.random.RandomState) -> np.ndarray:
    """A low-saturation, mid-value colour, for backgrounds."""
    return hsv_colour(rs.rand(), rs.uniform(0.04, 0.45), rs.uniform(0.25, 0.85))


def object_colour(rs: np.random.RandomState) -> np.ndarray:
    """A colour of the pool shared by every class (also used for some background elements)."""
    s = rs.uniform(0.0, 0.12) if rs.rand() < 0.15 else rs.uniform(0.25, 1.0)
    return hsv_colour(rs.rand(), s, rs.uniform(0.12, 1.0))


def overlap(ax0: int, ay0: int, ashape: Tuple[int, ...], bx0: int, by0: int,
            bshape: Tuple[int, ...]) -> Optional[Tuple[Window, Window]]:
    """Slices of arrays a and b (top-left pixels at (ax0, ay0), (bx0, by0)) covering their common pixels."""
    x0, y0 = max(ax0, bx0), max(ay0, by0)
    x1, y1 = min(ax0 + ashape[1], bx0 + bshape[1]), min(ay0 + ashape[0], by0 + bshape[0])
    if x1 <= x0 or y1 <= y0:
        return None
    return ((slice(y0 - ay0, y1 - ay0), slice(x0 - ax0, x1 - ax0)),
            (slice(y0 - by0, y1 - by0), slice(x0 - bx0, x1 - bx0)))


def blend(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray, x0: int, y0: int) -> None:
    """img = img * (1 - alpha) + colour * alpha where alpha (its top-left at (x0, y0)) meets img, in place.

    colour is a BGR triple or an array of alpha's shape plus 3 channels.
    """
    ov = overlap(0, 0, img.shape, x0, y0, alpha.shape)
    if ov is None:
        return
    wi, wa = ov
    a = alpha[wa][..., None]
    c = colour[wa] if colour.ndim == 3 else colour
    img[wi] = img[wi] * (1.0 - a) + c * a


def value_noise(rs: np.random.RandomState, h: int, w: int, cell: float, octaves: int) -> np.ndarray:
    """Smooth value noise in [0, 1], (h, w) float32: random grids of cell, cell/2, ... px, upsampled, blurred."""
    total = np.zeros((h, w), np.float32)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        c = max(2.0, cell / (2 ** o))
        gh, gw = int(math.ceil(h / c)) + 2, int(math.ceil(w / c)) + 2
        grid = rs.rand(gh, gw).astype(np.float32)
        up = cv2.resize(grid, (int(round(gw * c)), int(round(gh * c))), interpolation=cv2.INTER_CUBIC)
        oy = rs.randint(0, up.shape[0] - h + 1)
        ox = rs.randint(0, up.shape[1] - w + 1)
        up = cv2.GaussianBlur(np.ascontiguousarray(up[oy:oy + h, ox:ox + w]), (0, 0), min(c / 4.0, 4.0))
        total += amp * up
        norm += amp
        amp *= 0.5
    total /= norm
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / max(hi - lo, 1e-6)


def lerp(c1: np.ndarray, c2: np.ndarray, t: np.ndarray) -> np.ndarray:
    """c1 + (c2 - c1) * t for colours c1, c2 and a (h, w) field t: (h, w, 3) float32."""
    return c1[None, None, :] + (c2 - c1)[None, None, :] * t[..., None]


# ----------------------------------------------------------------------------------------------------------
# backgrounds

def bg_sky_ground(rs: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """A 'landscape': sky gradient over a textured ground, split along a blurred, hilly horizon."""
    yy = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)
    if rs.rand() < 0.7:
        top = hsv_colour(rs.uniform(0.52, 0.66), rs.uniform(0.15, 0.65), rs.uniform(0.5, 0.95))
    else:
        top = muted_colour(rs)
    haze = hsv_colour(rs.rand(), rs.uniform(0.0, 0.15), rs.uniform(0.7, 1.0))
    bottom = top + (haze - top) * rs.uniform(0.3, 0.75)
    k = rs.randint(3, 12)
    hills = np.interp(xs, np.linspace(0, w, k), rs.randn(k) * h * rs.uniform(0.01, 0.08)).astype(np.float32)
    hills = cv2.GaussianBlur(hills[None, :], (0, 0), w / (2.0 * k))[0]
    horizon = h * rs.uniform(0.25, 0.7) + rs.uniform(-0.15, 0.15) * (xs - w / 2.0) + hills
    t_sky = np.clip(yy / np.maximum(horizon[None, :], 1.0), 0.0, 1.0)
    sky = lerp(top, bottom, t_sky)
    if rs.rand() < 0.6:
        g1 = hsv_colour(rs.uniform(0.05, 0.12) if rs.rand() < 0.5 else rs.uniform(0.18, 0.4),
                        rs.uniform(0.2, 0.6), rs.uniform(0.2, 0.65))
    else:
        g1 = muted_colour(rs)
    g2 = g1 * rs.uniform(0.55, 1.35) + rs.uniform(-20, 20, 3).astype(np.float32)
    ground = lerp(g1, g2, value_noise(rs, h, w, rs.uniform(15, 80), rs.randint(2, 4)))
    ground *= (1.0 - rs.uniform(0.0, 0.35) * (yy / h))[..., None]
    mask = (yy >= horizon[None, :]).astype(np.float32)
    mask = cv2.GaussianBlur(mask, (0, 0), rs.uniform(1.0, 6.0))[..., None]
    return sky * (1.0 - mask) + ground * mask


def bg_noise(rs: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """Gaussian-blurred value noise (2-3 octaves) mapped between two or three muted colours."""
    c1, c2 = muted_colour(rs), muted_colour(rs)
    img = lerp(c1, c2, value_noise(rs, h, w, rs.uniform(20, 140), rs.randint(2, 4)))
    if rs.rand() < 0.5:
        c3 = muted_colour(rs)
        t = value_noise(rs, h, w, rs.uniform(40, 160), 2)
        t = np.clip((t - 0.5) * rs.uniform(1.5, 4.0) + 0.5, 0.0, 1.0)[..., None]
        img = img * (1.0 - t) + c3[None, None, :] * t
    return img


def bg_wood(rs: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """Tiled wood-like planks: warped stripes, a phase and brightness per plank, dark seams between planks."""
    if rs.rand() < 0.7:
        light = hsv_colour(rs.uniform(0.05, 0.11), rs.uniform(0.25, 0.6), rs.uniform(0.55, 0.9))
    else:
        light = muted_colour(rs)
    dark = light * rs.uniform(0.45, 0.8)
    ang = rs.uniform(0.0, math.pi) if rs.rand() < 0.4 else rs.choice([0.0, math.pi / 2]) + rs.uniform(-0.1, 0.1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    along = xx * math.cos(ang) + yy * math.sin(ang)
    across = -xx * math.sin(ang) + yy * math.cos(ang)
    plank_w = rs.uniform(30.0, 110.0)
    across -= float(across.min()) + rs.uniform(0.0, plank_w)
    plank = np.floor(across / plank_w).astype(np.int32) + 1
    n_planks = int(plank.max()) + 1
    phase = rs.uniform(0.0, 1.0, n_planks).astype(np.float32)
    shade = rs.uniform(0.85, 1.12, n_planks).astype(np.float32)
    period = rs.uniform(4.0, 14.0)
    warp = value_noise(rs, h, w, rs.uniform(30, 90), 2) * rs.uniform(3.0, 15.0)
    stripes = np.sin(2.0 * math.pi * ((across + warp) / period + phase[plank])) * 0.5 + 0.5
    stripes = stripes ** rs.uniform(0.5, 2.5)
    stripes += 0.15 * (np.sin(along / rs.uniform(20.0, 60.0) + phase[plank] * 6.0) * 0.5)
    img = lerp(dark, light, np.clip(stripes, 0.0, 1.0)) * shade[plank][..., None]
    seam = across % plank_w
    seam = np.minimum(seam, plank_w - seam) < rs.uniform(0.6, 1.6)
    img[seam] *= rs.uniform(0.35, 0.7)
    return img


def draw_blocks(rs: np.random.RandomState, img: np.ndarray, n: int) -> None:
    """n filled (possibly rotated) rectangles of muted colours, some semi-transparent, in place."""
    h, w = img.shape[:2]
    for _ in range(n):
        colour = object_colour(rs) if rs.rand() < 0.15 else muted_colour(rs)
        rw, rh = rs.uniform(0.05, 0.6) * w, rs.uniform(0.05, 0.6) * h
        ang = 0.0 if rs.rand() < 0.5 else rs.uniform(-45, 45)
        pts = cv2.boxPoints(((rs.uniform(0, w), rs.uniform(0, h)), (rw, rh), ang))
        x0, y0 = int(np.floor(pts[:, 0].min())) - 1, int(np.floor(pts[:, 1].min())) - 1
        x1, y1 = int(np.ceil(pts[:, 0].max())) + 2, int(np.ceil(pts[:, 1].max())) + 2
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.round((pts - (x0, y0)) * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
        opacity = 1.0 if rs.rand() < 0.6 else rs.uniform(0.35, 0.9)
        blend(img, mask.astype(np.float32) * (opacity / 255.0), colour, x0, y0)


def draw_soft_ellipses(rs: np.random.RandomState, img: np.ndarray, n: int) -> None:
    """n blurred, semi-transparent ellipses of muted colours (clouds, bushes, blobs), in place."""
    h, w = img.shape[:2]
    for _ in range(n):
        colour = muted_colour(rs)
        ax, ay = rs.uniform(0.04, 0.3) * w, rs.uniform(0.04, 0.3) * h
        sigma = rs.uniform(3.0, 18.0)
        r = int(max(ax, ay) + 3 * sigma) + 2
        cx, cy = int(rs.uniform(0, w)), int(rs.uniform(0, h))
        mask = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
        cv2.ellipse(mask, (r, r), (int(ax), int(ay)), rs.uniform(0, 180), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), sigma) * rs.uniform(0.25, 0.8)
        blend(img, mask, colour, cx - r, cy - r)


def make_background(rs: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """A (h, w, 3) float32 BGR background of one of four kinds, with optional layers on top."""
    kind = rs.choice(4, p=[0.3, 0.2, 0.25, 0.25])
    if kind == 0:
        img = bg_sky_ground(rs, h, w)
    elif kind == 1:
        img = np.empty((h, w, 3), np.float32)
        img[:] = muted_colour(rs)
        img *= (0.85 + 0.3 * value_noise(rs, h, w, rs.uniform(40, 150), 2))[..., None]
        draw_blocks(rs, img, rs.randint(4, 16))
    elif kind == 2:
        img = bg_noise(rs, h, w)
    else:
        img = bg_wood(rs, h, w)
    if kind != 1 and rs.rand() < 0.35:
        draw_blocks(rs, img, rs.randint(1, 5))
    if rs.rand() < 0.5:
        draw_soft_ellipses(rs, img, rs.randint(1, 6))
    if rs.rand() < 0.6:
        light = value_noise(rs, h, w, rs.uniform(80, 250), 2)
        img *= (1.0 - rs.uniform(0.1, 0.4) + rs.uniform(0.2, 0.5) * light)[..., None]
    return np.clip(img, 0, 255)


def draw_distractors(rs: np.random.RandomState, img: np.ndarray) -> None:
    """Small random text strings and thin polylines (not classes) on a uint8 image, in place."""
    h, w = img.shape[:2]
    for _ in range(rs.randint(0, 5)):
        text = ''.join(rs.choice(list(TEXT_CHARS), rs.randint(2, 11)))
        colour = object_colour(rs) if rs.rand() < 0.5 else muted_colour(rs)
        org = (int(rs.uniform(-0.1, 0.9) * w), int(rs.uniform(0.05, 1.0) * h))
        cv2.putText(img, text, org, FONTS[rs.randint(len(FONTS))], rs.uniform(0.35, 1.3),
                    tuple(float(c) for c in colour), int(rs.randint(1, 3)), cv2.LINE_AA)
    for _ in range(rs.randint(0, 5)):
        k = rs.randint(2, 7)
        start = np.array([rs.uniform(0, w), rs.uniform(0, h)])
        steps = rs.randn(k - 1, 2) * rs.uniform(15, 0.3 * max(w, h))
        pts = np.vstack([start, start + np.cumsum(steps, axis=0)])
        colour = object_colour(rs) if rs.rand() < 0.5 else muted_colour(rs)
        cv2.polylines(img, [np.round(pts * 16).astype(np.int32)], bool(rs.rand() < 0.2),
                      tuple(float(c) for c in colour), int(rs.randint(1, 3)), cv2.LINE_AA, 4)


# ----------------------------------------------------------------------------------------------------------
# glyphs (unit-sized outlines, y pointing down; they are rescaled to their box afterwards)

def heart_points(rs: np.random.RandomState) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, 96, endpoint=False)
    x = 16.0 * np.sin(t) ** 3
    y = -(13.0 * np.cos(t) - rs.uniform(4.0, 6.0) * np.cos(2 * t) - 2.0 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x * rs.uniform(0.9, 1.1), y], axis=1) / 16.0


def arrow_points(rs: np.random.RandomState) -> np.ndarray:
    """A block arrow pointing to +x: shaft, head (sometimes barbed), tail sometimes notched."""
    shaft, head = rs.uniform(0.08, 0.2), rs.uniform(0.3, 0.55)
    xh = 1.0 - 2.0 * rs.uniform(0.25, 0.45)
    barb = rs.uniform(0.0, 0.2) if rs.rand() < 0.4 else 0.0
    pts = [(-1.0, -shaft), (xh, -shaft), (xh - barb, -head), (1.0, 0.0), (xh - barb, head), (xh, shaft),
           (-1.0, shaft)]
    if rs.rand() < 0.35:
        pts.append((-1.0 + rs.uniform(0.1, 0.25), 0.0))
    return np.array(pts)


def crescent_points(rs: np.random.RandomState) -> np.ndarray:
    """The unit disc minus a disc of radius r centred at (d, 0): horns point to +x."""
    d, r = rs.uniform(0.3, 0.55), rs.uniform(0.8, 0.95)
    xi = (1.0 + d * d - r * r) / (2.0 * d)
    yi = math.sqrt(max(1.0 - xi * xi, 1e-6))
    th0 = math.atan2(yi, xi)
    ph0 = math.atan2(yi, xi - d)
    outer = np.linspace(th0, 2.0 * math.pi - th0, 64)
    inner = np.linspace(2.0 * math.pi - ph0, ph0, 48)[1:-1]
    pts = np.concatenate([np.stack([np.cos(outer), np.sin(outer)], 1),
                          np.stack([d + r * np.cos(inner), r * np.sin(inner)], 1)])
    return pts


def hexagon_points(rs: np.random.RandomState) -> np.ndarray:
    ang = np.deg2rad(60.0 * np.arange(6) + rs.uniform(0.0, 60.0))
    rad = 1.0 + rs.uniform(-0.04, 0.04, 6)
    return np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)


def bolt_points(rs: np.random.RandomState) -> np.ndarray:
    """A lightning bolt: a zigzag with a wide middle step, pointing down."""
    base = np.array([(0.58, 0.0), (0.16, 0.56), (0.46, 0.56), (0.30, 1.0), (0.86, 0.38), (0.55, 0.38),
                     (0.76, 0.0)])
    return (base + rs.uniform(-0.03, 0.03, base.shape)) - 0.5


def glyph_points(rs: np.random.RandomState, name: str) -> np.ndarray:
    """The outline of a glyph of class name, with its random variation, mirroring and rotation (unit scale)."""
    pts = {'heart': heart_points, 'arrow': arrow_points, 'crescent': crescent_points,
           'hexagon': hexagon_points, 'bolt': bolt_points}[name](rs).astype(np.float64)
    if name in ('crescent', 'bolt') and rs.rand() < 0.5:
        pts[:, 0] = -pts[:, 0]
    aspect = math.exp(rs.uniform(math.log(0.8), math.log(1.25)))
    pts[:, 0] *= math.sqrt(aspect)
    pts[:, 1] /= math.sqrt(aspect)
    angle = math.radians(rs.uniform(0.0, 360.0) if name == 'arrow' else rs.uniform(-30.0, 30.0))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return pts @ rot.T


def render_polygon(pts: np.ndarray, outline: int) -> Tuple[int, int, np.ndarray, Optional[np.ndarray]]:
    """Anti-aliased coverage of polygon pts (image coordinates) on a canvas just around it.

    Returns (x0, y0, fill, line): the canvas' top-left pixel in the image, the fill's coverage and that of
    an outline of the given thickness (None for 0), float32 in [0, 1].
    """
    x0, y0 = int(np.floor(pts[:, 0].min())) - 3, int(np.floor(pts[:, 1].min())) - 3
    x1, y1 = int(np.ceil(pts[:, 0].max())) + 4, int(np.ceil(pts[:, 1].max())) + 4
    fixed = [np.round((pts - (x0, y0)) * 16).astype(np.int32)]
    fill = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(fill, fixed, 255, cv2.LINE_AA, 4)
    line = None
    if outline:
        line_u8 = np.zeros_like(fill)
        cv2.polylines(line_u8, fixed, True, 255, outline, cv2.LINE_AA, 4)
        line = line_u8.astype(np.float32) / 255.0
    return x0, y0, fill.astype(np.float32) / 255.0, line


def make_fill(rs: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """An object's paint for an (h, w) window: solid, a two-colour gradient or speckle noise, float32 BGR."""
    kind = rs.choice(3, p=[0.45, 0.3, 0.25])
    c1 = object_colour(rs)
    if kind == 0:
        out = np.empty((h, w, 3), np.float32)
        out[:] = c1
        return out
    c2 = object_colour(rs)
    if kind == 1:
        ang = rs.uniform(0.0, 2.0 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx * math.cos(ang) + yy * math.sin(ang)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        return lerp(c1, c2, t)
    out = np.empty((h, w, 3), np.float32)
    out[:] = c1
    out += ((rs.rand(h, w, 1) + rs.rand(h, w, 1) - 1.0) * rs.uniform(20.0, 80.0)).astype(np.float32)
    dots = rs.rand(h, w) < rs.uniform(0.05, 0.3)
    out[dots] = c2
    if rs.rand() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), 0.6)
    return np.clip(out, 0, 255)


def contrast_score(fill: np.ndarray, beneath: np.ndarray) -> float:
    """>= 1 when the fill contrasts with what lies beneath (pixels as (n, 3)): mean distance and pixel share."""
    mean_dist = float(np.linalg.norm(fill.mean(axis=0) - beneath.mean(axis=0)))
    share = float(np.mean(np.linalg.norm(fill - beneath, axis=1) > 30.0))
    return min(mean_dist / MIN_CONTRAST, share / 0.75)


def sample_size(rs: np.random.RandomState, w: int, h: int) -> float:
    """Longer side of an object's box: log-uniform (80%) or uniform on [18 px, 70% of the shorter side]."""
    hi = MAX_SIZE_FRAC * min(w, h)
    if rs.rand() < 0.8:
        return math.exp(rs.uniform(math.log(MIN_SIZE), math.log(hi)))
    return rs.uniform(MIN_SIZE, hi)


def try_place(rs: np.random.RandomState, img: np.ndarray, placed: Sequence[Placed], name: str) -> Optional[Placed]:
    """Draw a random glyph of class name into img (float32, in place); update the visibility of those under it.

    Returns the new object, or None (img and placed untouched) when the draw breaks a rule: too little of it
    inside the image, an object under it would keep less than 40% of its pixels, or no fill (of 12 tries)
    contrasts well enough with the whole of what lies beneath it and with each object it covers.
    """
    h, w = img.shape[:2]
    pts = glyph_points(rs, name)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    size = sample_size(rs, w, h)
    pts = (pts - (lo + hi) / 2.0) * (size / float((hi - lo).max()))
    bw, bh = pts[:, 0].max() - pts[:, 0].min(), pts[:, 1].max() - pts[:, 1].min()
    if rs.rand() < 0.2 or bw + 6 >= w or bh + 6 >= h:      # across the border (or anywhere when too big)
        cx, cy = rs.uniform(-0.3 * bw, w + 0.3 * bw), rs.uniform(-0.3 * bh, h + 0.3 * bh)
    else:
        cx, cy = rs.uniform(bw / 2 + 2, w - 3 - bw / 2), rs.uniform(bh / 2 + 2, h - 3 - bh / 2)
    pts = pts + (cx, cy)
    outline = int(rs.randint(1, 3)) if rs.rand() < 0.3 else 0
    x0, y0, fill_a, line_a = render_polygon(pts, outline)
    alpha = fill_a if line_a is None else np.maximum(fill_a, line_a)
    ov = overlap(x0, y0, alpha.shape, 0, 0, img.shape)
    if ov is None:
        return None
    wl, wi = ov
    full_count = int(np.count_nonzero(alpha >= 0.5))
    vis = np.zeros_like(alpha)
    vis[wl] = alpha[wl]
    inimg_count = int(np.count_nonzero(vis >= 0.5))
    if full_count < 20 or inimg_count < 30 or inimg_count < 0.3 * full_count:
        return None
    updates = []
    for o in placed:
        ov_o = overlap(o.x0, o.y0, o.vis.shape, x0, y0, alpha.shape)
        if ov_o is None:
            continue
        wo, wn = ov_o
        sub = o.vis[wo]
        new_sub = sub * (1.0 - alpha[wn])
        count = o.vis_count - int(np.count_nonzero(sub >= 0.5)) + int(np.count_nonzero(new_sub >= 0.5))
        if count < KEEP_VISIBLE * o.inimg_count:
            return None
        updates.append((o, wo, wn, new_sub, count))
    inside = fill_a[wl] >= 0.5
    if np.count_nonzero(inside) < 10:
        return None
    # the fill must contrast with what lies beneath it as a whole, and with each object it covers
    under = img[wi]
    groups = [inside]
    for o, wo, wn, _, _ in updates:
        covered = np.zeros(alpha.shape, bool)
        covered[wn] = o.vis[wo] >= 0.5
        g = covered[wl] & inside
        if np.count_nonzero(g) >= 15:
            groups.append(g)
    hw = fill_a[wl].shape
    best, best_score = None, -1.0
    for _ in range(12):
        paint = make_fill(rs, hw[0], hw[1])
        score = min(contrast_score(paint[g], under[g]) for g in groups)
        if score > best_score:
            best, best_score = paint, score
        if score >= 1.0:
            break
    if best is None or best_score < 1.0:
        return None
    blend(img[wi], fill_a[wl], best, 0, 0)
    if line_a is not None:
        mean = best[inside].mean(axis=0)
        colour = mean * rs.uniform(0.15, 0.5) if rs.rand() < 0.5 else object_colour(rs)
        blend(img[wi], line_a[wl], colour, 0, 0)
    for o, wo, _, new_sub, count in updates:
        o.vis[wo] = new_sub
        o.vis_count = count
    return Placed(name=name, x0=x0, y0=y0, alpha=alpha, vis=vis, full_count=full_count,
                  inimg_count=inimg_count, vis_count=inimg_count, truncated=inimg_count < full_count)


def finish(rs: np.random.RandomState, img: np.ndarray) -> np.ndarray:
    """Camera-ish degradations: slight blur, pixel noise, sometimes a low-quality JPEG round trip; uint8."""
    h, w = img.shape[:2]
    if rs.rand() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rs.uniform(0.4, 0.8))
    amp = rs.uniform(0.0, 14.0)
    if amp > 1.0:
        img = img + ((rs.rand(h, w, 1) + rs.rand(h, w, 1) - 1.0) * amp).astype(np.float32)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if rs.rand() < 0.5:
        ok, enc = cv2.imencode('.jpg', out, [cv2.IMWRITE_JPEG_QUALITY, int(rs.randint(30, 76))])
        if ok:
            out = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    return out


def make_image(rs: np.random.RandomState) -> Tuple[np.ndarray, List[GlyphObject]]:
    """One image (uint8 BGR) and its objects, in drawing order."""
    w, h = int(rs.randint(320, 641)), int(rs.randint(240, 481))
    bg = np.ascontiguousarray(np.clip(make_background(rs, h, w) + 0.5, 0, 255).astype(np.uint8))
    draw_distractors(rs, bg)
    img = bg.astype(np.float32)
    placed: List[Placed] = []
    wanted = int(rs.randint(1, 7))
    for k in range(wanted):
        name = CLASSES[rs.randint(len(CLASSES))]   # kept over the retries, so that no class is favoured
        for _ in range(100 if k == 0 else 30):
            obj = try_place(rs, img, placed, name)
            if obj is not None:
                placed.append(obj)
                break
    objects = []
    for o in placed:
        ys, xs = np.nonzero(o.vis >= 0.5)
        xmin, xmax = int(xs.min()) + o.x0 + 1, int(xs.max()) + o.x0 + 1
        ymin, ymax = int(ys.min()) + o.y0 + 1, int(ys.max()) + o.y0 + 1
        longer = max(xmax - xmin + 1, ymax - ymin + 1)
        difficult = o.vis_count < DIFFICULT_VISIBLE * o.full_count or longer < DIFFICULT_SIZE
        objects.append(GlyphObject(o.name, (xmin, ymin, xmax, ymax), int(o.truncated), int(difficult)))
    return finish(rs, img), objects


# ----------------------------------------------------------------------------------------------------------
# files

def annotation_xml(filename: str, path: str, width: int, height: int, objects: Sequence[GlyphObject]) -> str:
    """The annotation as labelImg writes it (Pascal VOC, tab indentation, no XML declaration)."""
    lines = ['<annotation>',
             '\t<folder>JPEGImages</folder>',
             '\t<filename>{}</filename>'.format(escape(filename)),
             '\t<path>{}</path>'.format(escape(path)),
             '\t<source>',
             '\t\t<database>Unknown</database>',
             '\t</source>',
             '\t<size>',
             '\t\t<width>{}</width>'.format(width),
             '\t\t<height>{}</height>'.format(height),
             '\t\t<depth>3</depth>',
             '\t</size>',
             '\t<segmented>0</segmented>']
    for o in objects:
        xmin, ymin, xmax, ymax = o.box
        lines += ['\t<object>',
                  '\t\t<name>{}</name>'.format(escape(o.name)),
                  '\t\t<pose>Unspecified</pose>',
                  '\t\t<truncated>{}</truncated>'.format(o.truncated),
                  '\t\t<difficult>{}</difficult>'.format(o.difficult),
                  '\t\t<bndbox>',
                  '\t\t\t<xmin>{}</xmin>'.format(xmin),
                  '\t\t\t<ymin>{}</ymin>'.format(ymin),
                  '\t\t\t<xmax>{}</xmax>'.format(xmax),
                  '\t\t\t<ymax>{}</ymax>'.format(ymax),
                  '\t\t</bndbox>',
                  '\t</object>']
    lines.append('</annotation>')
    return '\n'.join(lines) + '\n'


def image_rng(seed: int, split_code: int, index: int) -> np.random.RandomState:
    """The RandomState of one image, from (seed, split, index) through SeedSequence."""
    state = np.random.SeedSequence([seed, split_code, index]).generate_state(8)
    return np.random.RandomState(state)


def write_image(task: Task) -> ImageResult:
    """Generate one image and write its picture and annotation into task.work_dir."""
    rs = image_rng(task.seed, task.split_code, task.index)
    img, objects = make_image(rs)
    h, w = img.shape[:2]
    if rs.rand() < 1.0 / 3.0:
        filename = task.image_id + '.png'
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    else:
        filename = task.image_id + '.jpg'
        params = [cv2.IMWRITE_JPEG_QUALITY, int(rs.randint(85, 96))]
    ok, buf = cv2.imencode(osp.splitext(filename)[1], img, params)
    if not ok:
        raise OSError('cannot encode {}'.format(filename))
    with open(osp.join(task.work_dir, 'JPEGImages', filename), 'wb') as f:  # not cv2.imwrite: any bytes in the path
        f.write(buf.tobytes())
    xml = annotation_xml(filename, osp.join(shown(task.final_dir), 'JPEGImages', filename), w, h, objects)
    with open(osp.join(task.work_dir, 'Annotations', task.image_id + '.xml'), 'w', encoding='utf-8') as f:
        f.write(xml)
    return ImageResult(task.image_id, task.split, tuple(objects))


def _init_worker() -> None:
    cv2.setNumThreads(1)


def run_tasks(tasks: Sequence[Task], workers: int) -> Iterator[ImageResult]:
    """write_image over tasks, in order, in this process (workers <= 1) or in a pool of processes."""
    if workers <= 1 or len(tasks) < 2:
        _init_worker()
        for t in tasks:
            yield write_image(t)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context('fork' if 'fork' in methods else None)
    with ctx.Pool(processes=workers, initializer=_init_worker) as pool:
        for r in pool.imap(write_image, tasks, chunksize=8):
            yield r


def make_tasks(work_dir: str, final_dir: str, seed: int, counts: Dict[str, int]) -> List[Task]:
    """The images to generate: ids img_0001, img_0002, ... over trainval, then test."""
    total = sum(counts.values())
    width = max(4, len(str(total)))
    tasks: List[Task] = []
    n = 0
    for split, code in SPLITS:
        for i in range(counts[split]):
            n += 1
            tasks.append(Task(split, code, i, 'img_{:0{}d}'.format(n, width), seed, work_dir, final_dir))
    return tasks


def shown(path: str) -> str:
    """A path as printable text (bytes that are not UTF-8 as \\xNN)."""
    return os.fsencode(path).decode('utf-8', 'backslashreplace')


def listing(folder: str, limit: int = 5) -> str:
    """'a, b/, c and N more': the entries of folder, folders with a trailing '/'."""
    names = sorted(os.listdir(folder))
    shown_names = [shown(n) + ('/' if osp.isdir(osp.join(folder, n)) and not osp.islink(osp.join(folder, n))
                               else '') for n in names[:limit]]
    more = ' and {} more'.format(len(names) - limit) if len(names) > limit else ''
    return ', '.join(shown_names) + more


def generate(out_dir: str, seed: int, num_trainval: int, num_test: int, workers: int) -> str:
    """Write the dataset into out_dir (which must not exist or be empty) atomically; returns the summary line."""
    start = time.time()
    out_dir = osp.abspath(osp.expanduser(out_dir))
    if osp.lexists(out_dir) and not osp.isdir(out_dir):
        raise FileExistsError('{} exists and is not a folder; refusing to write there (choose another '
                              'folder)'.format(shown(out_dir)))
    if osp.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError('{} exists and is not empty: it holds {}; refusing to touch it (choose another '
                              'folder, or empty it)'.format(shown(out_dir), listing(out_dir)))
    parent = osp.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    n = 0
    while True:
        work_dir = osp.join(parent, '.{}.tmp-{}-{}'.format(osp.basename(out_dir), os.getpid(), n))
        try:
            os.mkdir(work_dir)
            break
        except FileExistsError:
            n += 1
    try:
        for sub in ('Annotations', 'JPEGImages', osp.join('ImageSets', 'Main')):
            os.makedirs(osp.join(work_dir, sub))
        counts = {'trainval': num_trainval, 'test': num_test}
        tasks = make_tasks(work_dir, out_dir, seed, counts)
        ids: Dict[str, List[str]] = {split: [] for split, _ in SPLITS}
        per_class = {c: 0 for c in CLASSES}
        n_obj = n_trunc = n_diff = 0
        for r in run_tasks(tasks, workers):
            ids[r.split].append(r.image_id)
            for o in r.objects:
                per_class[o.name] += 1
                n_obj += 1
                n_trunc += o.truncated
                n_diff += o.difficult
        for split, _ in SPLITS:
            with open(osp.join(work_dir, 'ImageSets', 'Main', split + '.txt'), 'w', encoding='utf-8') as f:
                f.write(''.join(i + '\n' for i in ids[split]))
        os.rename(work_dir, out_dir)   # onto nothing or an empty folder; fails if something was put there meanwhile
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return ('glyphs: {} images ({} trainval, {} test), {} objects ({}; {} truncated, {} difficult) in {:.1f} s '
            '-> {}'.format(len(tasks), num_trainval, num_test, n_obj,
                           ', '.join('{} {}'.format(c, per_class[c]) for c in CLASSES),
                           n_trunc, n_diff, time.time() - start, shown(out_dir)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog='make_glyphs.py', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    p.add_argument('out_dir', metavar='OUT_DIR', help='folder to create (must not exist, or be empty)')
    p.add_argument('--seed', type=int, default=7, help='random seed (default 7)')
    p.add_argument('--num-trainval', type=int, default=600, help='trainval images (default 600)')
    p.add_argument('--num-test', type=int, default=300, help='test images (default 300)')
    p.add_argument('--workers', type=int, default=2, help='processes (default 2)')
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error('--seed must be >= 0')
    if args.num_trainval < 1 or args.num_test < 1:
        p.error('need at least 1 trainval and 1 test image')
    if args.workers < 1:
        p.error('--workers must be >= 1')
    try:
        print(generate(args.out_dir, args.seed, args.num_trainval, args.num_test, args.workers))
    except FileExistsError as e:
        print('make_glyphs.py: {}'.format(e), file=sys.stderr)
        return 2
    except OSError as e:
        print('make_glyphs.py: {}'.format(e if not e.filename else '{}: {}'.format(
            shown(os.fsdecode(e.filename)), e.strerror or e)), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
