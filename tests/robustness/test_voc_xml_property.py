"""Property tests of the VOC XML reader (and the image set reader) on generated bad input.

Every input ends either in AnnotationError (a ValueError) whose message names the file, or in the documented
handling, checked here against an independent statement of the rules (never an exception from inside a library,
never a silent success on input the rules call broken):
- a file that is not well-formed XML, or whose root is not <annotation>: an error;
- an object needs one non-empty <name> and one <bndbox> with one each of <xmin>, <ymin>, <xmax>, <ymax>, each a
  finite number of at most 1e6 in absolute value (Python's float() syntax), with xmax >= xmin and ymax >= ymin;
- <difficult> / <truncated>: absent or empty is 0, else a finite number (truncated to an int);
- unknown tags are ignored; <size> is never an error (nonsense gives None: the image is the truth).
"""
import math
import os
import os.path as osp
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from datasets.pascal_voc import read_image_set
from datasets.voc_xml import MAX_COORD, AnnotationError, parse_voc_xml

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope='module')
def path(tmp_path_factory):
    # a name with a space and a non-ASCII letter: messages must still name it exactly
    return str(tmp_path_factory.mktemp('xmlprop') / 'annoté 1.xml')


def write(p, data):
    with open(p, 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode('utf-8'))


def expect_error_naming(p):
    try:
        return parse_voc_xml(p)
    except AnnotationError as e:
        assert p in str(e), str(e)
        return None


# characters XML 1.0 can carry (no control characters but the white space ones, no surrogates, no U+FFFE/FFFF)
xml_chars = st.characters(blacklist_categories=('Cs', 'Cc'), blacklist_characters='\ufffe\uffff')
xml_text = st.text(xml_chars, max_size=12)

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-MAX_COORD, max_value=MAX_COORD,
                   allow_subnormal=False)
number_text = st.one_of(
    finite.map(repr),
    st.integers(-10 ** 6, 10 ** 6).map(str),
    st.sampled_from(['nan', 'NaN', 'inf', '-inf', 'Infinity', '1e400', '-1e309', '9' * 400]),
    st.floats(min_value=MAX_COORD * 1.0001, max_value=1e300).map(repr),  # finite but implausibly large
    st.text(st.sampled_from('abcxyz,;- '), min_size=1, max_size=6),      # not a number at all
    st.just(''),
)


def number_value(t):
    """The rules' reading of a coordinate text: a float, or None when it is not an acceptable number."""
    try:
        v = float(t.strip())
    except ValueError:
        return None
    return v if math.isfinite(v) and abs(v) <= MAX_COORD else None


@st.composite
def objects(draw):
    """(xml text of one <object>, the rules' verdict: None if broken, else (name, bbox, difficult))."""
    ok = True
    parts = ['<object>']
    name = draw(st.one_of(st.none(), xml_text))
    if name is None:
        ok = False
    else:
        parts.append('<name>{}</name>'.format(escape(name)))
        if not name.strip():
            ok = False
    if draw(st.booleans()):
        parts.append('<occluded>{}</occluded>'.format(escape(draw(xml_text))))  # an extra tag: ignored
    difficult = 0
    d = draw(st.one_of(st.none(), number_text))
    if d is not None:
        parts.append('<difficult>{}</difficult>'.format(escape(d)))
        if d.strip():
            try:
                dv = float(d.strip())
                if not math.isfinite(dv) or abs(dv) > MAX_COORD:
                    raise ValueError
                difficult = int(dv)
            except ValueError:
                ok = False
    bbox = []
    if draw(st.integers(0, 9)) == 0:
        ok = False  # no <bndbox>
    else:
        parts.append('<bndbox>')
        for tag in ('xmin', 'ymin', 'xmax', 'ymax'):
            n = draw(st.sampled_from([1] * 8 + [0, 2]))  # mostly one tag; sometimes none, sometimes two
            texts = [draw(number_text) for _ in range(n)]
            parts += ['<{0}>{1}</{0}>'.format(tag, escape(t)) for t in texts]
            if n != 1 or number_value(texts[0]) is None:
                ok = False
            else:
                bbox.append(number_value(texts[0]))
        parts.append('</bndbox>')
    parts.append('</object>')
    if ok and (bbox[2] < bbox[0] or bbox[3] < bbox[1]):
        ok = False
    return ''.join(parts), ((name.strip(), tuple(bbox), difficult) if ok else None)


@SETTINGS
@given(body=st.lists(objects(), max_size=4),
       size=st.one_of(st.none(), st.tuples(number_text, number_text)),
       filename=st.one_of(st.none(), xml_text))
def test_structured_annotations(path, body, size, filename):
    s = ['<annotation>']
    if filename is not None:
        s.append('<filename>{}</filename>'.format(escape(filename)))
    if size is not None:
        s.append('<size><width>{}</width><height>{}</height></size>'.format(escape(size[0]), escape(size[1])))
    s += [b for b, _ in body]
    s.append('</annotation>')
    write(path, ''.join(s))
    rec = expect_error_naming(path)
    verdicts = [v for _, v in body]
    if any(v is None for v in verdicts):
        assert rec is None, 'a broken object was accepted: {}'.format(s)
        return
    assert rec is not None
    got = [(o['name'], tuple(o['bbox']), o['difficult']) for o in rec['objects']]
    assert got == verdicts
    if rec['size'] is not None:
        w, h = rec['size']
        assert isinstance(w, int) and isinstance(h, int) and 0 < w <= MAX_COORD and 0 < h <= MAX_COORD


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes(path, data):
    write(path, data)
    rec = expect_error_naming(path)
    if rec is not None:  # only an <annotation> document can pass; whatever it holds is well formed
        for o in rec['objects']:
            assert o['name'] and all(math.isfinite(v) for v in o['bbox'])


@SETTINGS
@given(objs=st.lists(objects(), min_size=1, max_size=3),
       cut=st.floats(0, 1, exclude_max=True, allow_subnormal=False))
def test_truncated_xml(path, objs, cut):
    text = ('<?xml version="1.0" encoding="utf-8"?>\n<annotation><filename>a.jpg</filename>'
            + ''.join(b for b, _ in objs) + '</annotation>').encode('utf-8')
    n = int(len(text) * cut)
    write(path, text[:n])
    with pytest.raises(AnnotationError) as ei:
        parse_voc_xml(path)
    assert path in str(ei.value) and 'cannot parse the XML' in str(ei.value)


@SETTINGS
@given(root=st.from_regex(r'[A-Za-z_][A-Za-z0-9_]{0,8}', fullmatch=True).filter(lambda t: t != 'annotation'))
def test_other_root_element(path, root):
    write(path, '<{0}><object><name>car</name></object></{0}>'.format(root))
    with pytest.raises(AnnotationError, match='root element is <{}>'.format(root)):
        parse_voc_xml(path)


@pytest.mark.parametrize('data', [b'<?xml version="1.0" encoding="bogus"?><annotation/>',
                                  b'<?xml version="1.0" encoding="shift_jis"?><annotation/>',
                                  b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><annotation>&x;'
                                  b'</annotation>',
                                  b'\xef\xbb\xbf<annotation><object><name>\xff</name></object></annotation>'])
def test_encodings_and_entities(path, data):
    # the parser's LookupError / ValueError / ParseError all become AnnotationError naming the file
    write(path, data)
    with pytest.raises(AnnotationError) as ei:
        parse_voc_xml(path)
    assert path in str(ei.value)


def test_missing_file(path):
    p = path + '.absent'
    with pytest.raises(AnnotationError, match='cannot read the annotation'):
        parse_voc_xml(p)


# ------------------------------------------------------------------------------------------------ image set files
@SETTINGS
@given(data=st.binary(max_size=200))
def test_image_set_random_bytes(tmp_path_factory, data):
    p = str(tmp_path_factory.getbasetemp() / 'set 1.txt')
    write(p, data)
    try:
        ids = read_image_set(p)
    except AnnotationError as e:
        assert p in str(e)
        return
    # accepted: each id is one word of a UTF-8 line, relative, with no '..' or control character
    for i in ids:
        assert i and not any(c.isspace() for c in i) and not i.startswith('/')
        assert '..' not in i.replace('\\', '/').split('/')
        assert all(ord(c) >= 32 and ord(c) != 127 for c in i)
        assert i.encode('utf-8') in data
