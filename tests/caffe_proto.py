"""A minimal Caffe .caffemodel writer for tests, written from the protobuf wire-format spec (independent of the
parser under test, nets.weights.read_caffemodel)."""
import numpy as np


def varint(n: int) -> bytes:
    out = b''
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num: int, wt: int, payload: bytes) -> bytes:
    key = varint((num << 3) | wt)
    if wt == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def blob(arr: np.ndarray) -> bytes:
    shape = b''.join(varint(d) for d in arr.shape)
    msg = field(7, 2, field(1, 2, shape))                               # BlobShape { repeated int64 dim = 1 [packed] }
    return msg + field(5, 2, np.ascontiguousarray(arr, '<f4').tobytes())  # data: packed floats


def layer(name: str, blobs, kind: str = 'Convolution') -> bytes:
    msg = field(1, 2, name.encode()) + field(2, 2, kind.encode())
    for b in blobs:
        msg += field(7, 2, blob(b))
    return field(100, 2, msg)                                            # NetParameter.layer = 100


def caffemodel(net_name: str, layers) -> bytes:
    """layers: (name, [weight, bias]) pairs, in order."""
    return field(1, 2, net_name.encode()) + b''.join(layer(n, b) for n, b in layers)
