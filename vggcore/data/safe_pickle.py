"""Restricted unpickling for the dataset files that come as pickles (CIFAR-10/100's python version).

A pickle is a program: its opcodes may name any importable callable and call it while the file loads, so
`pickle.load` on a downloaded "CIFAR-10" runs whatever the file says. `load` runs only what the real files
need and refuses the rest, with a one-line error naming the file and what it refused, before the refused
thing can run:

    opcodes      every protocol (0-5) for None, bools, ints, floats, bytes, str, tuples, lists and dicts
                 (dict keys scalars only); refused: INST, OBJ, NEWOBJ, NEWOBJ_EX, sets, persistent ids,
                 out-of-band buffers, BUILD on anything but a numpy array or dtype, and items added to
                 anything but a dict or list
    globals      numpy.ndarray, only as _reconstruct's first argument (calling it is refused), and these
                 callables, each checking its arguments:
                   numpy.core.multiarray._reconstruct   how every numpy pickles an array (numpy 1 names it
                   numpy._core.multiarray._reconstruct  numpy.core, as in the real files; numpy 2 numpy._core):
                                                        only (ndarray, (0,), 'b'), an empty array that the
                                                        BUILD after it fills; a non-empty shape would make a
                                                        10-byte file allocate any amount of memory
                   numpy.core.numeric._frombuffer       protocol 5's array (what Python 3.14 writes by
                   numpy._core.numeric._frombuffer      default): an array over bytes from the file itself
                   numpy.dtype                          a type code such as 'u1' (str or bytes) only
                   _codecs.encode                       (str, 'latin1') only: how Python 3 writes bytes at
                                                        protocols 0-2
                   __builtin__.bytes / builtins.bytes   with no argument: Python 3's empty bytes at 0-2
                 arrays hold numbers only: an object dtype is refused (its elements would be built from a
                 list of any length)

Everything else, any other module, function or class, is refused. Two more guards keep a hostile file
from exhausting memory: the file is read into memory first, so no length field in it can make a read
allocate more than the file holds; and the memo lives in a dict (the pure-Python unpickler), because the C
unpickler sizes its memo table from the index a PUT opcode names (a 10-byte file asking for 64 GiB).
That unpickler is slower per opcode, but a CIFAR batch is ~10^4-10^5 opcodes around one 30 MB byte string,
so reading one takes about as long as `pickle.load` did.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vggcore.errors import UserError

ADMITTED_SUMMARY = "builtin containers and scalars, bytes, str and numpy arrays of numbers"
SCALAR_KEYS = (str, bytes, int, float, bool, type(None))


class RefusedPickleError(UserError, ValueError):
    """A pickle names a global, opcode or call this reader refuses; nothing it names was run."""


class UnreadablePickleError(UserError, ValueError):
    """A file that cannot be read or is not a well-formed pickle of the expected kind."""


def _show(text: Any, limit: int = 80) -> str:
    """A name from the file, safe to print on one line (it may hold newlines or be long)."""
    text = str(text)
    shown = text if text.isprintable() else repr(text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


class _Refusal(Exception):
    """Raised inside the unpickler; `load` turns it into a RefusedPickleError naming the file."""


class _Recipe:
    """An admitted global: a name and the checking function that stands in for the real callable."""

    __slots__ = ("name", "build")

    def __init__(self, name: str, build: Callable[..., Any]) -> None:
        self.name, self.build = name, build

    def __call__(self, *args: Any) -> Any:
        return self.build(*args)

    def __repr__(self) -> str:
        return self.name


class _Marker:
    """numpy.ndarray as an argument (the array type `_reconstruct` is told to make); calling it is refused."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "numpy.ndarray"


NDARRAY = _Marker()


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    if subtype is not NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise _Refusal(f"numpy's _reconstruct called with ({_show(subtype)}, {_show(shape)}, {_show(typecode)}) "
                       "instead of numpy's own (ndarray, (0,), 'b')")
    return np.empty((0,), np.int8)  # what _reconstruct(ndarray, (0,), 'b') makes; BUILD then sets it


def _dtype(code: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if isinstance(code, bytes):
        code = code.decode("ascii", "replace")
    if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z?][0-9]{0,6}", code) \
            or align not in (0, 1) or copy not in (0, 1):
        raise _Refusal(f"numpy.dtype called with ({_show(code)}, {_show(align)}, {_show(copy)}) instead of a "
                       "type code such as 'u1'")
    dtype = np.dtype(code, bool(align), bool(copy))
    if dtype.hasobject:
        raise _Refusal("a numpy array of Python objects (dtype 'O')")
    return dtype


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(buf, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or dtype.hasobject \
            or not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape) \
            or order not in ("C", "F", b"C", b"F"):
        raise _Refusal(f"numpy's _frombuffer called with ({type(buf).__name__}, {_show(dtype)}, {_show(shape)}, "
                       f"{_show(order)}) instead of (bytes, dtype, shape, 'C' or 'F')")
    order = order.decode() if isinstance(order, bytes) else order
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)  # numpy's own _frombuffer, checked


def _encode(text: Any, encoding: Any = None) -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refusal(f"_codecs.encode called with ({type(text).__name__}, {_show(encoding)}) instead of "
                       "(str, 'latin1')")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    if args:
        raise _Refusal(f"bytes called with {len(args)} argument(s) instead of none")
    return b""


_RECONSTRUCT = _Recipe("numpy.core.multiarray._reconstruct", _reconstruct)
_FROMBUFFER = _Recipe("numpy.core.numeric._frombuffer", _frombuffer)
_BYTES = _Recipe("bytes", _empty_bytes)
ADMITTED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): NDARRAY,
    ("numpy", "dtype"): _Recipe("numpy.dtype", _dtype),
    ("_codecs", "encode"): _Recipe("_codecs.encode", _encode),
    ("__builtin__", "bytes"): _BYTES,
    ("builtins", "bytes"): _BYTES,
}


def _refuse_opcode(name: str) -> Callable[["_RestrictedUnpickler"], None]:
    def refuse(self: "_RestrictedUnpickler") -> None:
        raise _Refusal(f"the opcode {name}")
    return refuse


class _Dispatch(dict):
    def __missing__(self, code: int) -> None:  # the pure-Python unpickler would raise a bare KeyError
        raise pickle.UnpicklingError(f"invalid load key {bytes([code])!r}")


# The pure-Python unpickler, for its dict memo (see the module docstring); its dispatch table is copied
# and the opcodes that could call or mutate something are replaced.
class _RestrictedUnpickler(pickle._Unpickler):
    dispatch = _Dispatch(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        admitted = ADMITTED.get((module, name))
        if admitted is None:
            raise _Refusal(f"the global {_show(module)}.{_show(name)}")
        return admitted

    def persistent_load(self, pid: Any) -> Any:
        raise _Refusal("a persistent id")

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if not isinstance(func, _Recipe) or not isinstance(args, tuple):
            raise _Refusal(f"a call of {_show(repr(func))}")
        self.stack[-1] = func(*args)

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.ndarray):
            # (version, shape, dtype, fortran, raw bytes): numpy checks the bytes fill the shape exactly;
            # an object dtype would instead allocate the shape and fill it from a list, so it is refused.
            if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], np.dtype)
                    and not state[2].hasobject and isinstance(state[4], (bytes, bytearray))):
                raise _Refusal("a numpy array state other than (version, shape, dtype, fortran, raw bytes)")
        elif not isinstance(inst, np.dtype) or not isinstance(state, tuple):
            raise _Refusal(f"BUILD (setting the state) of a {type(inst).__name__}")
        inst.__setstate__(state)

    # Containers: a dict key is hashed as it is stored, and hashing a tuple nested a million deep (1 MB of
    # TUPLE1 opcodes) overflows the C stack, so keys are scalars (the files' keys are bytes). Items go into
    # dicts and lists only, never into an array or another object through its __setitem__ or extend.
    def _check_keys(self, keys) -> None:
        for key in keys:
            if type(key) not in SCALAR_KEYS:
                raise _Refusal(f"a dict key of type {type(key).__name__}")

    def _check_target(self, target: Any, kind: type) -> None:
        if type(target) is not kind:
            raise _Refusal(f"items added to a {type(target).__name__}")

    def load_dict(self) -> None:
        self._check_keys(self.stack[0::2])  # after MARK, self.stack holds just the key, value pairs
        super().load_dict()

    def load_setitem(self) -> None:
        self._check_target(self.stack[-3], dict)
        self._check_keys([self.stack[-2]])
        super().load_setitem()

    def load_setitems(self) -> None:
        self._check_target(self.metastack[-1][-1], dict)
        self._check_keys(self.stack[0::2])
        super().load_setitems()

    def load_append(self) -> None:
        self._check_target(self.stack[-2], list)
        super().load_append()

    def load_appends(self) -> None:
        self._check_target(self.metastack[-1][-1], list)
        super().load_appends()

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.DICT[0]] = load_dict
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    for _op in ("INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "NEXT_BUFFER", "READONLY_BUFFER", "EMPTY_SET", "ADDITEMS",
                "FROZENSET"):
        if hasattr(pickle, _op):
            dispatch[getattr(pickle, _op)[0]] = _refuse_opcode(_op)
    del _op


def load(path: Path | str, *, what: str = "this file") -> Any:
    """The object pickled in `path`, read as a Python 2 pickle would be (str as bytes, like the real CIFAR
    files), admitting only what the module docstring lists. `what` names the kind of file in the messages
    ("a CIFAR python-format batch").

    Raises RefusedPickleError (a global, opcode or call refused; nothing it names ran) or
    UnreadablePickleError (unreadable, truncated or not a pickle)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UnreadablePickleError(f"cannot read {path} ({type(err).__name__}: {err.strerror or err})") from None
    try:
        return _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _Refusal as err:
        raise RefusedPickleError(f"refused to load {path}: it holds {err}, which {what} never contains (only "
                                 f"{ADMITTED_SUMMARY} are admitted); nothing in the file was run") from None
    except MemoryError:
        raise
    except Exception as err:  # every other failure here comes from the file's bytes: a damaged or foreign file
        detail = _show(str(err).splitlines()[0] if str(err) else "", 200)
        raise UnreadablePickleError(f"{path} is not {what} ({type(err).__name__}: {detail})") from None
