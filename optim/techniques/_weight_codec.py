"""Deep Compression's storage format: sparse relative indices plus codebook indices, packed at a
fixed bit width or Huffman-coded, and a decoder that gives back the exact weights.

Han, Mao, Dally, "Deep Compression", ICLR 2016, Sec. 2-4 and Fig. 3: a pruned layer is stored as
(gap, value) pairs, where ``gap`` is the number of zeros skipped since the previous stored entry,
held in ``index_bits`` bits; a gap too long for that width is bridged with a *filler* entry whose
value is zero. A clustered layer stores each value as an index into its codebook of shared
weights. Huffman coding of both streams saves a further 20-30% (their Table 1).

One blob holds every tensor of a model's state dict: coded weight tensors ("dense" or "sparse"
layout, codebook or raw float values) and everything else (biases, batch-norm statistics,
buffers) as raw bytes, so its length is the size a user would really ship besides the
architecture's code (the paper counts the same way). Layout::

    MAGIC | u32 header length | zlib(JSON header) | payload (codebooks and bit streams)

The decoder needs no pickle: it rebuilds numpy arrays from the header and the payload.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

import numpy as np

from optim.errors import InputError

MAGIC = b"OPTDC1"
#: Largest codebook the coder accepts (8-bit indices). Clustering uses at most 2**8 centroids.
MAX_CODEBOOK = 256
#: Index (gap) widths tried per tensor; the smallest encoding wins, as the paper tuned per layer.
INDEX_BITS = range(1, 9)

Coding = Literal["fixed", "huffman"]
ValueKind = Literal["codebook", "float"]


@dataclass(frozen=True)
class TensorReport:
    """How one tensor was stored and what it cost."""

    name: str
    layout: str  # raw | dense | sparse
    numel: int
    nonzeros: int
    entries: int  # stored entries (sparse: nonzeros + fillers; dense: numel)
    codebook_size: int
    index_bits: int
    payload_bytes: int

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.payload_bytes / max(1, self.numel)


def codebook_of(weights: np.ndarray) -> np.ndarray | None:
    """The sorted distinct non-zero values of ``weights`` when there are at most 256, else None.

    A clustered (weight-shared) layer has at most ``2**bits`` of them; an ordinary float layer has
    about as many as it has weights and cannot be index-coded without loss.
    """
    nz = weights[weights != 0]
    values = np.unique(nz)
    return values if len(values) <= MAX_CODEBOOK else None


# --- encoding --------------------------------------------------------------------------------
def encode_state(state: Mapping[str, np.ndarray], coded: Mapping[str, ValueKind],
                 coding: Coding) -> tuple[bytes, list[TensorReport]]:
    """Pack ``state`` (name → array) into one blob.

    Tensors named in ``coded`` are stored dense or sparse, whichever is smaller, their values
    either indices into the tensor's codebook of distinct values (``"codebook"``: it must have
    ≤ 256 of them) or raw floats (``"float"``: a pruned, unclustered layer). Every other tensor is
    stored raw. ``coding`` is ``fixed`` (each stream at its minimal bit width) or ``huffman``
    (canonical Huffman code per stream).
    """
    entries, reports, chunks = [], [], []
    for name, array in state.items():
        array = np.asarray(array, order="C")  # (ascontiguousarray would turn 0-d into 1-d)
        if name in coded:
            meta, payload, rep = _encode_weight(name, array, coding, coded[name] == "codebook")
        else:
            payload = array.tobytes()
            meta = {"layout": "raw"}
            rep = TensorReport(name, "raw", array.size, int(np.count_nonzero(array)), array.size, 0, 0, len(payload))
        meta.update(name=name, shape=list(array.shape), dtype=array.dtype.str, nbytes=len(payload))
        entries.append(meta)
        chunks.append(payload)
        reports.append(rep)
    header = zlib.compress(json.dumps({"v": 1, "coding": coding, "tensors": entries},
                                      separators=(",", ":")).encode(), 9)
    return MAGIC + struct.pack("<I", len(header)) + header + b"".join(chunks), reports


def _encode_weight(name: str, w: np.ndarray, coding: Coding, use_codebook: bool) -> tuple[dict, bytes, TensorReport]:
    flat = w.reshape(-1)
    nonzero = np.flatnonzero(flat)
    if use_codebook:
        book = codebook_of(flat)
        if book is None:
            raise ValueError(f"{name}: more than {MAX_CODEBOOK} distinct values; cluster it first")
        book = book.astype(flat.dtype)
        zero_symbol = len(book)
        # Symbols 0..k-1 index the codebook; k stands for zero (dense zeros and sparse fillers).
        dense_symbols = np.full(flat.size, zero_symbol, dtype=np.int64)
        dense_symbols[nonzero] = np.searchsorted(book, flat[nonzero])
        book_bytes = book.tobytes()
    else:
        book, zero_symbol, book_bytes = None, 0, b""  # no codebook: zero_symbol is unused

    candidates: list[tuple[dict[str, Any], bytes, int, int]] = []
    if book is not None:
        stream, table = _code_stream(dense_symbols, _alphabet(dense_symbols, zero_symbol), coding)
        candidates.append(({"layout": "dense", "k": len(book), "values": table},
                           book_bytes + stream, flat.size, 0))
    for bits in INDEX_BITS:
        gaps, positions = _gaps_with_fillers(nonzero, bits)
        filler = positions < 0
        if book is not None:
            vals = np.asarray(np.where(filler, zero_symbol, dense_symbols[np.maximum(positions, 0)]))
            vstream, vtable = _code_stream(vals, _alphabet(vals, zero_symbol), coding)
            value_part, k = book_bytes + vstream, len(book)
        else:
            raw = np.where(filler, 0, flat[np.maximum(positions, 0)]).astype(flat.dtype)
            value_part, vtable, k = raw.tobytes(), None, 0
        gstream, gtable = _code_stream(gaps, 1 << bits, coding)
        meta: dict[str, Any] = {"layout": "sparse", "k": k, "index_bits": bits, "entries": int(len(gaps)),
                "values": vtable, "gaps": gtable, "gap_bytes": len(gstream)}
        candidates.append((meta, gstream + value_part, int(len(gaps)), bits))
    # Never worse than the plain array (e.g. a 10-value bias, or a dense unclustered layer).
    candidates.append(({"layout": "dense_raw"}, flat.tobytes(), flat.size, 0))
    meta, payload, n_entries, bits = min(candidates, key=lambda c: len(c[1]) + len(json.dumps(c[0])))
    layout = {"dense_raw": "raw"}.get(meta["layout"], meta["layout"])
    rep = TensorReport(name, layout, flat.size, len(nonzero), n_entries, 0 if book is None else len(book),
                       bits, len(payload))
    return meta, payload, rep


def _alphabet(symbols: np.ndarray, zero_symbol: int) -> int:
    """Codebook size, plus one for the zero symbol only when it occurs (so a dense 5-bit layer
    without zeros stays at 5 bits)."""
    return zero_symbol + 1 if bool((symbols == zero_symbol).any()) else zero_symbol


def _gaps_with_fillers(nonzero: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(gap per stored entry, position or -1 for a filler) for the non-zero positions.

    A gap counts the zeros skipped since the previous entry; it must fit in ``bits`` bits, so a
    longer run of zeros is split by filler entries that each stand for ``2**bits`` positions
    (``2**bits - 1`` skipped zeros and the filler's own zero).
    """
    span = 1 << bits
    prev = np.concatenate(([-1], nonzero[:-1])) if len(nonzero) else np.zeros(0, np.int64)
    skipped = nonzero - prev - 1
    fillers = skipped // span
    remainder = skipped % span
    count = fillers + 1
    total = int(count.sum())
    gaps = np.full(total, span - 1, dtype=np.int64)
    positions = np.full(total, -1, dtype=np.int64)
    last = np.cumsum(count) - 1  # each real entry comes after its fillers
    gaps[last] = remainder
    positions[last] = nonzero
    return gaps, positions


def _code_stream(symbols: np.ndarray, alphabet: int, coding: Coding) -> tuple[bytes, dict]:
    """Bytes of ``symbols`` (each < ``alphabet``) and the table needed to decode them."""
    if len(symbols) == 0:
        return b"", {}
    if coding == "fixed":
        width = max(1, int(np.ceil(np.log2(alphabet))))
        bits = ((symbols[:, None] >> np.arange(width - 1, -1, -1)) & 1).astype(np.uint8)
        return np.packbits(bits.reshape(-1)).tobytes(), {"w": width}
    from bitarray import bitarray
    from bitarray.util import canonical_huffman

    values, freq = np.unique(symbols, return_counts=True)
    code = canonical_huffman({int(v): int(f) for v, f in zip(values, freq)})[0]
    # The table is just each symbol's code length (one base-36 digit per symbol of the alphabet,
    # 0 = unused); the canonical code is rebuilt from the lengths on both sides.
    lengths = [0] * alphabet
    for sym, word in code.items():
        lengths[sym] = len(word)
    table = {"l": "".join(_DIGITS[n] for n in lengths).rstrip("0")}
    out = bitarray(endian="big")
    out.encode(_canonical_code(lengths)[0], symbols.tolist())
    return out.tobytes(), table


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _canonical_code(lengths: list[int]) -> tuple[dict, list[int], list[int]]:
    """(symbol → code, count per length, symbols in canonical order) from code lengths: codes are
    assigned in order of (length, symbol), as DEFLATE does, so only the lengths need storing."""
    from bitarray import bitarray

    order = sorted((n, s) for s, n in enumerate(lengths) if n)
    count = [0] * (max((n for n, _ in order), default=0) + 1)
    codes, value, prev = {}, 0, 0
    for n, sym in order:
        value <<= n - prev
        codes[sym] = bitarray(format(value, f"0{n}b"), endian="big")
        count[n] += 1
        value, prev = value + 1, n
    return codes, count, [s for _, s in order]


# --- decoding --------------------------------------------------------------------------------
def decode_state(blob: bytes) -> dict[str, np.ndarray]:
    """The state dict (name → array) stored in ``blob`` by :func:`encode_state`, exactly."""
    if not blob.startswith(MAGIC):
        raise InputError("not a compressed-weights file (bad magic); it was not written by optim's huffman/cluster.")
    (hlen,) = struct.unpack_from("<I", blob, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(zlib.decompress(blob[start:start + hlen]))
    payload = memoryview(blob)[start + hlen:]
    coding = header["coding"]
    state = {}
    offset = 0
    for meta in header["tensors"]:
        dtype = np.dtype(meta["dtype"])
        shape = tuple(meta["shape"])
        numel = int(np.prod(shape)) if shape else 1
        chunk = bytes(payload[offset:offset + meta["nbytes"]])
        offset += meta["nbytes"]
        layout = meta["layout"]
        if layout in ("raw", "dense_raw"):
            flat = np.frombuffer(chunk, dtype=dtype, count=numel).copy()
        elif layout == "dense":
            k = meta["k"]
            book = np.frombuffer(chunk, dtype=dtype, count=k)
            symbols = _decode_stream(chunk[k * dtype.itemsize:], meta["values"], numel, coding)
            flat = np.concatenate([book, np.zeros(1, dtype)])[symbols]
        else:
            flat = _decode_sparse(chunk, meta, dtype, numel, coding)
        state[meta["name"]] = flat.reshape(shape)
    return state


def _decode_sparse(chunk: bytes, meta: dict, dtype: np.dtype, numel: int, coding: Coding) -> np.ndarray:
    n, k = meta["entries"], meta["k"]
    gaps = _decode_stream(chunk[:meta["gap_bytes"]], meta["gaps"], n, coding)
    rest = chunk[meta["gap_bytes"]:]
    if k:
        book = np.frombuffer(rest, dtype=dtype, count=k)
        symbols = _decode_stream(rest[k * dtype.itemsize:], meta["values"], n, coding)
        values = np.concatenate([book, np.zeros(1, dtype)])[symbols]
    else:
        values = np.frombuffer(rest, dtype=dtype, count=n)
    positions = np.cumsum(gaps + 1) - 1
    flat = np.zeros(numel, dtype)
    flat[positions] = values  # fillers write their own zero
    return flat


def _decode_stream(data: bytes, table: dict, n: int, coding: Coding) -> np.ndarray:
    if n == 0:
        return np.zeros(0, np.int64)
    if coding == "fixed":
        width = table["w"]
        bits = np.unpackbits(np.frombuffer(data, np.uint8))[:n * width].reshape(n, width)
        return (bits.astype(np.int64) << np.arange(width - 1, -1, -1)).sum(axis=1)
    from bitarray import bitarray
    from bitarray.util import canonical_decode

    _, count, order = _canonical_code([_DIGITS.index(c) for c in table["l"]])
    stream = bitarray(endian="big")
    stream.frombytes(data)
    return np.fromiter(islice(canonical_decode(stream, count, order), n), np.int64, n)


# --- torch glue ------------------------------------------------------------------------------
def module_state(module) -> dict[str, np.ndarray]:
    """The module's state dict as numpy arrays (what the blob stores)."""
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def load_state(module, state: Mapping[str, np.ndarray]) -> None:
    """Load decoded arrays into ``module`` (same architecture), strictly."""
    import torch

    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)


def summarize(reports: list[TensorReport]) -> dict:
    """JSON-able per-tensor table for ``info``."""
    return {r.name: {"layout": r.layout, "nonzeros": r.nonzeros, "numel": r.numel,
                     "codebook_size": r.codebook_size, "index_bits": r.index_bits,
                     "bytes": r.payload_bytes, "bits_per_weight": round(r.bits_per_weight, 3)}
            for r in reports}
