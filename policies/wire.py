"""The policy server's wire format: msgpack with numpy arrays, as openpi's websocket policy protocol sends them.

An array travels as a map {b"__ndarray__": True, b"data": raw bytes, b"dtype": "<f4", b"shape": [...]} and a numpy
scalar as {b"__npgeneric__": True, b"data": value, b"dtype": "<f4"}. Decoding never unpickles: only plain numeric
dtypes are accepted, and the byte count must match the declared shape.
"""

from __future__ import annotations

import math

import msgpack
import numpy as np

ALLOWED_KINDS = "biuf"  # bool, signed, unsigned, float; object, void (structured) and complex are refused


class WireError(ValueError):
    """A frame that is not valid msgpack-numpy, or holds something the protocol does not allow."""


def _encode(obj):
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in ALLOWED_KINDS:
            raise WireError(f"cannot send an array of dtype {obj.dtype}; allowed kinds: bool, int, uint, float")
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in ALLOWED_KINDS:
            raise WireError(f"cannot send a scalar of dtype {obj.dtype}")
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    if isinstance(obj, tuple):
        return list(obj)
    raise WireError(f"cannot send a value of type {type(obj).__name__}")


def _dtype(text) -> np.dtype:
    if not isinstance(text, str):
        raise WireError(f"array dtype must be a string such as '<f4'; got {type(text).__name__}")
    try:
        dtype = np.dtype(text)
    except TypeError:
        raise WireError(f"unknown array dtype {text!r}") from None
    if dtype.kind not in ALLOWED_KINDS:
        raise WireError(f"array dtype {text!r} is not allowed; allowed kinds: bool, int, uint, float")
    return dtype


def _decode(obj: dict):
    if b"__ndarray__" in obj:
        data, shape = obj.get(b"data"), obj.get(b"shape")
        dtype = _dtype(obj.get(b"dtype"))
        if not isinstance(data, bytes):
            raise WireError("array data must be msgpack bin bytes")
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape) or len(shape) > 8:
            raise WireError(f"array shape must be a list of at most 8 non-negative ints; got {shape!r}")
        expected = math.prod(shape) * dtype.itemsize
        if len(data) != expected:
            raise WireError(f"array of shape {tuple(shape)} and dtype {dtype.str} needs {expected} bytes; "
                            f"got {len(data)}")
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if b"__npgeneric__" in obj:
        dtype = _dtype(obj.get(b"dtype"))
        value = obj.get(b"data")
        if not isinstance(value, (bool, int, float)):
            raise WireError(f"numpy scalar data must be a number; got {type(value).__name__}")
        return dtype.type(value)
    return obj


def packb(obj) -> bytes:
    """Serialize dicts/lists/strings/numbers and numpy arrays or scalars (numeric dtypes only)."""
    return msgpack.packb(obj, default=_encode, use_bin_type=True)


def unpackb(data: bytes):
    """Deserialize one frame; any malformed content is a one-line WireError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"expected a binary msgpack frame; got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, object_hook=_decode, raw=False)
    except WireError:
        raise
    except Exception as err:  # msgpack raises several types (ExtraData, FormatError, StackError, ValueError, ...)
        detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise WireError(f"not a valid msgpack frame ({detail})") from None
