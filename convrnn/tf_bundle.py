"""TensorFlow checkpoints (the V2 "tensor bundle" format) read and written without TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index`` and ``PREFIX.data-00000-of-0000N``. The index is a LevelDB-style
SSTable (tensorflow/core/lib/io/table_format): data blocks of prefix-compressed ``key -> value`` entries with a
restart array, each followed by a 1-byte compression type and a masked CRC32C; an index block pointing at the
data blocks; a 48-byte footer ending in the magic number 0xdb4775248b80fb57. Keys are variable names (the empty
key holds the BundleHeaderProto); values are BundleEntryProto messages (tensorflow/core/protobuf/
tensor_bundle.proto): dtype (1), shape (2), shard_id (3), offset (4), size (5), crc32c (6, masked), slices (7).
The data files hold each tensor's raw little-endian bytes at ``offset``.

``read_bundle(prefix)`` returns ``{name: numpy array}``; ``write_bundle(prefix, arrays)`` writes the same format
as TensorFlow's BundleWriter (tensorflow/core/util/tensor_bundle/tensor_bundle.cc: ``BundleWriter::Finish`` builds
the index with ``options.compression = table::kNoCompression`` and a header of num_shards 1, endianness LITTLE;
``BundleWriter::Add`` stores ``crc32c::Mask(crc32c)`` of the tensor bytes), used to test the reader and the
conversion.
"""
from __future__ import annotations

import os
import struct
from typing import Dict, Iterator, List, Mapping, Tuple

import numpy as np

from neurozoo.datasets.errors import UserFacingError

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 14: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}
DTYPE_CODES = {np.dtype(v): k for k, v in DTYPES.items()}


class BundleError(UserFacingError):
    """A file that is not a readable TensorFlow V2 checkpoint (the message names the file and the field)."""


# ----------------------------------------------------------------------------- CRC32C (Castagnoli)
def _crc_table() -> List[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    """LevelDB / TensorFlow crc32c::Mask."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- varints and protobuf
def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _put_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf: bytes) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value) of a serialized protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def parse_entry(buf: bytes) -> dict:
    """A BundleEntryProto as a dict (dtype, shape, shard_id, offset, size, crc32c, sliced)."""
    entry = {"dtype": 0, "shape": [], "shard_id": 0, "offset": 0, "size": 0, "crc32c": None, "sliced": False}
    for number, _, value in _fields(buf):
        if number == 1:
            entry["dtype"] = value
        elif number == 2:
            for dim_number, _, dim in _fields(value):
                if dim_number == 2:
                    size = next((v for n, _, v in _fields(dim) if n == 1), 0)
                    entry["shape"].append(size - (1 << 64) if size >= 1 << 63 else size)
        elif number == 3:
            entry["shard_id"] = value
        elif number == 4:
            entry["offset"] = value
        elif number == 5:
            entry["size"] = value
        elif number == 6:
            entry["crc32c"] = struct.unpack("<I", value)[0]
        elif number == 7:
            entry["sliced"] = True
    return entry


def _message(*fields: Tuple[int, int, object]) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _put_varint(number << 3 | wire)
        if wire == 0:
            out += _put_varint(int(value))
        elif wire == 2:
            out += _put_varint(len(value)) + value
        elif wire == 5:
            out += struct.pack("<I", value)
    return bytes(out)


def entry_proto(dtype: int, shape, offset: int, size: int, crc: int) -> bytes:
    dims = b"".join(_message((2, 2, _message((1, 0, d)) if d else b"")) for d in shape)
    fields = [(1, 0, dtype), (2, 2, dims)]
    if offset:
        fields.append((4, 0, offset))
    if size:
        fields.append((5, 0, size))
    fields.append((6, 5, crc))
    return _message(*fields)


# ----------------------------------------------------------------------------- SSTable
def _block_entries(block: bytes) -> Iterator[Tuple[bytes, bytes]]:
    num_restarts = struct.unpack("<I", block[-4:])[0]
    limit = len(block) - 4 - 4 * num_restarts
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + length]
        pos += length


def _read_block(data: bytes, offset: int, size: int, where: str) -> bytes:
    block, trailer = data[offset:offset + size], data[offset + size:offset + size + 5]
    if len(block) != size or len(trailer) != 5:
        raise BundleError(f"{where}: a block at offset {offset} runs past the end of the file")
    if trailer[0] != 0:
        raise BundleError(f"{where}: block compression type {trailer[0]} (only uncompressed blocks are supported)")
    if mask(crc32c(block + trailer[:1])) != struct.unpack("<I", trailer[1:])[0]:
        raise BundleError(f"{where}: block at offset {offset} fails its CRC32C check (corrupt file)")
    return block


def read_table(path: str) -> Dict[bytes, bytes]:
    """Every ``key -> value`` of an SSTable file."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < FOOTER_SIZE or struct.unpack("<Q", data[-8:])[0] != MAGIC:
        raise BundleError(f"{path}: not a TensorFlow checkpoint index (no SSTable magic number in the footer)")
    footer = data[-FOOTER_SIZE:]
    _, pos = _varint(footer, 0)  # metaindex offset
    _, pos = _varint(footer, pos)  # metaindex size
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    out: Dict[bytes, bytes] = {}
    for _, handle in _block_entries(_read_block(data, index_offset, index_size, path)):
        offset, pos = _varint(handle, 0)
        size, _ = _varint(handle, pos)
        out.update(_block_entries(_read_block(data, offset, size, path)))
    return out


def _block(entries: List[Tuple[bytes, bytes]]) -> bytes:
    """One uncompressed block, a restart point at every entry (shared prefix 0)."""
    out, restarts = bytearray(), []
    for key, value in entries:
        restarts.append(len(out))
        out += _put_varint(0) + _put_varint(len(key)) + _put_varint(len(value)) + key + value
    restarts = restarts or [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def write_table(path: str, items: Mapping[bytes, bytes]) -> None:
    entries = sorted(items.items())
    body = bytearray()

    def append(block: bytes) -> bytes:
        handle = _put_varint(len(body)) + _put_varint(len(block))
        trailer = b"\x00"
        body.extend(block + trailer + struct.pack("<I", mask(crc32c(block + trailer))))
        return handle

    data_handle = append(_block(entries))
    meta_handle = append(_block([]))
    index_handle = append(_block([(entries[-1][0] if entries else b"", data_handle)]))
    footer = meta_handle + index_handle
    footer += b"\x00" * (40 - len(footer)) + struct.pack("<Q", MAGIC)
    with open(path, "wb") as fh:
        fh.write(bytes(body) + footer)


# ----------------------------------------------------------------------------- bundles
def read_bundle(prefix: str, verify: bool = False) -> Dict[str, np.ndarray]:
    """``{variable name: array}`` of the checkpoint ``prefix`` (``prefix.index`` and its data shards).

    ``verify``: check every tensor's CRC32C too (pure Python: about 1 s per 10 MB)."""
    index = prefix + ".index"
    if not os.path.exists(index):
        raise BundleError(f"{index}: no such file (give the checkpoint prefix, e.g. ckpts/rgc_intermediate/model.ckpt)")
    table = read_table(index)
    header = table.pop(b"", b"")
    num_shards = next((v for n, _, v in _fields(header) if n == 1), 1) or 1
    shards: Dict[int, bytes] = {}
    out: Dict[str, np.ndarray] = {}
    for key, value in sorted(table.items()):
        name = key.decode("utf-8")
        entry = parse_entry(value)
        if entry["sliced"]:
            raise BundleError(f"{index}: variable {name!r} is stored in slices (partitioned), not supported")
        if entry["dtype"] not in DTYPES:
            raise BundleError(f"{index}: variable {name!r} has TensorFlow dtype {entry['dtype']}, not supported")
        shard = entry["shard_id"]
        if shard not in shards:
            path = f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"
            if not os.path.exists(path):
                raise BundleError(f"{path}: missing data shard of {index}")
            with open(path, "rb") as fh:
                shards[shard] = fh.read()
        raw = shards[shard][entry["offset"]:entry["offset"] + entry["size"]]
        if len(raw) != entry["size"]:
            raise BundleError(f"{index}: variable {name!r} runs past the end of data shard {shard}")
        if verify and entry["crc32c"] is not None and mask(crc32c(raw)) != entry["crc32c"]:
            raise BundleError(f"{index}: variable {name!r} fails its CRC32C check (corrupt data shard)")
        dtype = np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
        array = np.frombuffer(raw, dtype=dtype)
        shape = tuple(entry["shape"])
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise BundleError(f"{index}: variable {name!r} has {array.size} values for shape {list(shape)}")
        out[name] = array.reshape(shape).astype(dtype.newbyteorder("="))
    return out


def write_bundle(prefix: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as a single-shard TensorFlow V2 checkpoint (``prefix.index``, ``prefix.data-00000-of-00001``)."""
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    data = bytearray()
    items: Dict[bytes, bytes] = {}
    for name in sorted(arrays):
        array = np.asarray(arrays[name])
        if array.dtype not in DTYPE_CODES:
            raise BundleError(f"variable {name!r}: dtype {array.dtype} has no TensorFlow code here")
        raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
        items[name.encode("utf-8")] = entry_proto(DTYPE_CODES[array.dtype], array.shape, len(data), len(raw),
                                                  mask(crc32c(raw)))
        data += raw
    items[b""] = _message((1, 0, 1), (3, 2, _message((1, 0, 1))))  # num_shards 1, version {producer 1}
    with open(f"{prefix}.data-00000-of-00001", "wb") as fh:
        fh.write(bytes(data))
    write_table(prefix + ".index", items)
