"""Seeds of a run's random streams, derived from its parts by one hash.

    >>> from vggcore.seeds import SCHEME, derive, stream_seed
    >>> stream_seed(SCHEME, seed=0, epoch=3, stream="dropout", rank=2)   # rank 2's dropout in epoch 4
    >>> derive(0, 3, 17)                                                # the folder data's image 17 in epoch 4

A run draws from several streams per epoch: the batch order (shared by every rank), each rank's augmentation and
each rank's dropout; `vggcore.data.folder` adds one per image. Each stream's seed is a hash of what names it (seed,
epoch, the stream's name, the rank), so no two streams of a run share a seed however many ranks and epochs it
has. The first trainer derived seeds linearly, `seed * 1_000_003 + epoch * 101 + stream`, where rank 11's
dropout stream in epoch e (stream 1000 + 11) was the batch order's in epoch e + 10 (1 + 10 * 101). That scheme is
kept as `LEGACY`: a run records its scheme in every checkpoint and in metrics.json, and a file without the field
was written under the linear one, so a run started then resumes exactly as it began.
"""

from __future__ import annotations

import hashlib

SCHEME = "hash-v1"        # new runs: `derive` over (seed, epoch, stream name, rank)
LEGACY = "linear"         # runs recorded before the scheme was recorded: `legacy_seed`
SCHEMES = (LEGACY, SCHEME)
STREAMS = ("order", "augment", "dropout")   # batch order (one per epoch), per-rank augmentation and dropout

SEED_BITS = 63            # non-negative and within torch.Generator.manual_seed's signed 64-bit range


def derive(*parts: int | str) -> int:
    """A 63-bit seed from integers and names: unlike a linear formula, (1, 0) and (0, 1) give unrelated seeds,
    and a name never equals a number (no integer prints as "dropout")."""
    digest = hashlib.blake2b(",".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> (64 - SEED_BITS)


def legacy_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """The linear scheme of runs recorded before `SCHEME` (rank r's dropout was stream 1000 + r and collides)."""
    return (seed * 1_000_003 + epoch * 101 + stream) % (2 ** 63)


def _legacy_stream(stream: str, rank: int) -> int:
    # The stream numbers the linear scheme gave: order 1, augmentation 16 + rank, dropout 0 (rank 0) or 1000 + rank.
    return {"order": 1, "augment": 16 + rank, "dropout": 0 if rank == 0 else 1000 + rank}[stream]


def stream_seed(scheme: str, seed: int, epoch: int, stream: str, rank: int = 0) -> int:
    """The seed of one stream of a run: `stream` is one of STREAMS (the order is the same on every rank, so its
    rank is ignored); `scheme` is the run's recorded scheme (SCHEME, or LEGACY for runs recorded before it)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; streams are {', '.join(STREAMS)}")
    if scheme == LEGACY:
        return legacy_seed(seed, epoch, _legacy_stream(stream, rank))
    if scheme != SCHEME:
        raise ValueError(f"unknown seed scheme {scheme!r}; this vggcore knows {', '.join(SCHEMES)}")
    return derive(seed, epoch, stream, 0 if stream == "order" else rank)

