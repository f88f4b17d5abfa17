"""Two fixes to wasmtime-py 50's value conversion, installed once per worker.

1. ``list<u8>``: stock wasmtime-py converts one byte at a time through ctypes
   (about 1 s per MiB). We build and read the array of 32-byte
   ``wasmtime_component_val_t`` cells with strided slices and one memmove,
   which is 7-30x faster (toolchain.md §6). ``bytearray`` and ``memoryview``
   are accepted too.
2. ``result<option<T>, E>`` (get-schedule, get-client, get-service): the
   option makes every value look like the ok arm, so stock wasmtime-py can
   never lower the err arm (toolchain.md §9). Host functions return
   :class:`Err` to say "this is the err arm"; the patched ``_lower`` honours it.
   Any other value returned for a ``result`` is its ok arm, whether or not
   wasmtime-py would have wanted a tagged ``Variant``: host code has one rule.
"""
from __future__ import annotations

import ctypes

from wasmtime import _ffi as ffi
from wasmtime.component import _types as types

_CELL = ctypes.sizeof(ffi.wasmtime_component_val_t)
_PAYLOAD = ffi.wasmtime_component_val_t.of.offset
_U8_KIND = bytes((ffi.WASMTIME_COMPONENT_U8.value,))


class Err:
    """The err arm of a ``result``, stated explicitly."""

    __slots__ = ("payload",)

    def __init__(self, payload):
        self.payload = payload

    def __repr__(self) -> str:
        return f"Err({self.payload!r})"


_stock = {
    "to_c": types.ListType.convert_to_c,
    "from_c": types.ListType.convert_from_c,
    "add_classes": types.ListType.add_classes,
    "lower": types.VariantLikeType._lower,
}


def _is_bytes(list_type) -> bool:
    # ListType.element allocates a new type object each time: remember the answer.
    cached = list_type.__dict__.get("_is_u8")
    if cached is None:
        cached = isinstance(list_type.element, types.U8)
        list_type.__dict__["_is_u8"] = cached
    return cached


def _to_c(self, store, val, ptr):
    if not _is_bytes(self):
        return _stock["to_c"](self, store, val, ptr)
    if not isinstance(val, (bytes, bytearray, memoryview)):
        raise TypeError("expected bytes value")
    data = memoryview(val).cast("B")
    count = data.nbytes
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, count)
    if count:
        cells = bytearray(_CELL * count)
        cells[0::_CELL] = _U8_KIND * count
        cells[_PAYLOAD::_CELL] = data
        ctypes.memmove(raw.data, (ctypes.c_char * len(cells)).from_buffer(cells), len(cells))
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = raw


def _from_c(self, c):
    if not _is_bytes(self):
        return _stock["from_c"](self, c)
    try:
        count = c.of.list.size
        return ctypes.string_at(c.of.list.data, _CELL * count)[_PAYLOAD::_CELL] if count else b""
    finally:
        ffi.wasmtime_component_vallist_delete(ctypes.byref(c.of.list))


def _add_classes(self, s):
    if _is_bytes(self):
        s.update((bytes, bytearray, memoryview))
    else:
        s.add(list)


def _lower(self, store, val):
    if isinstance(val, Err):
        return _lower_case(self, store, "err", val.payload)
    if isinstance(self, types.ResultType) and not isinstance(val, types.Variant) and self._tagged():
        return _lower_case(self, store, "ok", val)
    return _stock["lower"](self, store, val)


def _lower_case(variant_type, store, tag, payload):
    for name, ty in variant_type._cases():
        if name == tag:
            if ty is None:
                return (name, None)
            raw = ffi.wasmtime_component_val_t()
            ty.convert_to_c(store, payload, ctypes.pointer(raw))
            return (name, ffi.wasmtime_component_val_new(ctypes.byref(raw)))
    raise ValueError(f"no {tag} case in this type")


def install() -> None:
    types.ListType.convert_to_c = _to_c
    types.ListType.convert_from_c = _from_c
    types.ListType.add_classes = _add_classes
    types.VariantLikeType._lower = _lower
