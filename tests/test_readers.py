"""Reading a data set runs none of its code (issue 22): CIFAR pickles through vggcore.data.safe_pickle, image
folders through vggcore.data.folder.ImageReader."""

import builtins
import codecs
import io
import os
import pickle
import struct
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import torch

from vggcore.data import safe_pickle
from vggcore.config import DataConfig
from vggcore.data.datasets import DataFileError, DataRootError, load, read_cifar_file, read_cifar_meta
from vggcore.errors import UserError


# ------------------------------------------------------------------------------------- writing CIFAR files
class Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2's str opcodes (STRING / SHORT_BINSTRING / BINSTRING) and numpy's
    array reconstruction under numpy 1's name: the pickles cPickle wrote for the real CIFAR files."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if self.proto == 0:
            self.write(b"S'" + codecs.escape_encode(data)[0] + b"'\n")
        elif len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = dispatch[str] = save_py2_str


def py2_dumps(obj, protocol=2) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


WRITERS = {**{f"py2-protocol{p}": (lambda obj, p=p: py2_dumps(obj, p)) for p in (0, 1, 2)},
           **{f"py3-protocol{p}": (lambda obj, p=p: pickle.dumps(obj, protocol=p)) for p in (2, 3, 4, 5)}}


def cifar_batch(rng, n, label_keys, classes, name="training batch 1 of 5"):
    """One batch in the real layout: bytes keys, uint8 (n, 3072) data, label lists, filenames."""
    batch = {b"batch_label": name.encode(), b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"filenames": [f"img_{i:04d}.png".encode() for i in range(n)]}
    for key, k in zip(label_keys, classes):
        batch[key] = [int(v) for v in rng.integers(0, k, n)]
    return batch


def write_cifar10(root, dumps, n=6):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        (folder / name).write_bytes(dumps(cifar_batch(rng, n, [b"labels"], [10], f"batch {i}")))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(dumps({b"num_cases_per_batch": n, b"label_names": names,
                                                 b"num_vis": 3072}))
    return folder


def write_cifar100(root, dumps, n=12):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name in ("train", "test"):
        (folder / name).write_bytes(dumps(cifar_batch(rng, n, [b"fine_labels", b"coarse_labels"], [100, 20], name)))
    (folder / "meta").write_bytes(dumps({b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                                         b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}))
    return folder


def old_read(path, label_key):
    """What vggcore.data.datasets read before issue 22: pickle.load, then the same conversion."""
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return torch.from_numpy(data.copy()), torch.from_numpy(np.asarray(batch[label_key], dtype=np.int64))


# ------------------------------------------------------------------------------------- real layouts load
@pytest.mark.parametrize("writer", list(WRITERS))
def test_real_layout_cifar10_loads_as_pickle_load_did(tmp_path, writer):
    folder = write_cifar10(tmp_path, WRITERS[writer])
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        new, old = read_cifar_file(folder / name, b"labels"), old_read(folder / name, b"labels")
        assert new[0].dtype == torch.uint8 and new[1].dtype == torch.int64 and new[0].shape == (6, 3, 32, 32)
        assert torch.equal(new[0], old[0]) and torch.equal(new[1], old[1])
    data = load(DataConfig("cifar10", data_root=str(tmp_path), val_fraction=0.2), 32)
    assert torch.equal(data.test.images, old_read(folder / "test_batch", b"labels")[0])
    assert len(data.train) + len(data.val) == 30
    meta = read_cifar_meta(folder / "batches.meta")
    assert meta == {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                    "ship", "truck"]}


@pytest.mark.parametrize("writer", ["py2-protocol2", "py3-protocol2", "py3-protocol5"])
def test_real_layout_cifar100_loads_fine_labels_as_pickle_load_did(tmp_path, writer):
    folder = write_cifar100(tmp_path, WRITERS[writer])
    for name in ("train", "test"):
        new, old = read_cifar_file(folder / name, b"fine_labels"), old_read(folder / name, b"fine_labels")
        assert torch.equal(new[0], old[0]) and torch.equal(new[1], old[1])
        coarse = old_read(folder / name, b"coarse_labels")[1]
        assert torch.equal(read_cifar_file(folder / name, b"coarse_labels")[1], coarse)
    data = load(DataConfig("cifar100", data_root=str(tmp_path)), 32)
    assert data.num_classes == 100 and torch.equal(data.test.labels, old_read(folder / "test", b"fine_labels")[1])
    meta = read_cifar_meta(folder / "meta")
    assert meta["fine_label_names"][:2] == ["fine0", "fine1"] and len(meta["coarse_label_names"]) == 20


def test_py2_writer_matches_the_real_files_opcodes(tmp_path):
    """The emulation is what it claims: Python 2 str opcodes, numpy 1's global names, no Python 3 bytes."""
    import pickletools

    raw = py2_dumps(cifar_batch(np.random.default_rng(0), 3, [b"labels"], [10]))
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
    assert raw[:2] == b"\x80\x02"
    globals_ = {arg for name, arg in ops if name == "GLOBAL"}
    assert globals_ == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert {name for name, _ in ops} & {"SHORT_BINSTRING", "BINSTRING"}
    assert not {name for name, _ in ops} & {"BINBYTES", "SHORT_BINBYTES", "BINUNICODE", "SHORT_BINUNICODE"}


# ------------------------------------------------------------------------------------- code never runs
class Payload:
    """Pickles as a call of `func(arg)`: what a hostile file does."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def payloads(pwned):
    return {
        "os.system": Payload(os.system, f"touch {pwned}"),
        "builtins.exec": Payload(builtins.exec, f"open({str(pwned)!r}, 'w').close()"),
        "builtins.eval": Payload(builtins.eval, f"open({str(pwned)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "builtins.eval"])
def test_malicious_batch_is_refused_before_it_runs(tmp_path, kind, protocol):
    pwned = tmp_path / "PWNED"
    payload = payloads(pwned)[kind]
    # The payload after a genuine array, inside the labels: it is refused where the file names it.
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, payload]}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    with pytest.raises(safe_pickle.RefusedPickleError) as caught:
        read_cifar_file(path, b"labels")
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
    assert "\n" not in message and str(path) in message and "nothing in the file was run" in message
    func = payload.func
    assert f"{func.__module__}.{func.__name__}" in message or f"__builtin__.{func.__name__}" in message
    assert not pwned.exists()


def test_control_the_payload_does_run_under_plain_pickle(tmp_path):
    """The test above would catch a reader that runs the payload: plain pickle.load does."""
    pwned = tmp_path / "PWNED"
    raw = pickle.dumps({b"data": payloads(pwned)["os.system"]}, protocol=2)
    pickle.loads(raw, encoding="bytes")
    assert pwned.exists()


def reduce_pickle(*ops: bytes) -> bytes:
    return b"\x80\x02" + b"".join(ops) + b"."


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def short(s: bytes):
    return pickle.SHORT_BINSTRING + bytes([len(s)]) + s


T1 = b"\x85"  # TUPLE1


@pytest.mark.parametrize("raw,refused", [
    # numpy.ndarray called directly: an uninitialised array of any size from a few bytes
    (reduce_pickle(glob("numpy", "ndarray"), b"J\x00\xe4\x0bT" + T1 + T1, b"R"), "a call of numpy.ndarray"),
    # _reconstruct asked for a non-empty array (the real files always ask for shape (0,))
    (reduce_pickle(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), b"J\x00\xe4\x0bT" + T1,
                   short(b"b"), b"\x87", b"R"), "_reconstruct called with"),
    # an object array: its elements would be built from an arbitrary list
    (reduce_pickle(glob("numpy", "dtype"), short(b"O8"), T1, b"R"), "Python objects"),
    # a module numpy also has, but a name the files never use
    (reduce_pickle(glob("numpy", "load"), short(b"x"), T1, b"R"), "the global numpy.load"),
    (reduce_pickle(glob("numpy.core.multiarray", "scalar"), b")R"), "the global numpy.core.multiarray.scalar"),
    # _codecs.encode with a codec other than latin1
    (reduce_pickle(glob("_codecs", "encode"), b"X\x01\x00\x00\x00x", b"X\x04\x00\x00\x00zlib", b"\x86R"),
     "_codecs.encode called with"),
    (reduce_pickle(glob("__builtin__", "bytes"), b"J\x00\xe4\x0bT" + T1, b"R"), "bytes called with 1"),
    # setting attributes on an admitted callable (BUILD) or making an object by NEWOBJ
    (reduce_pickle(glob("numpy", "dtype"), b"}b"), "BUILD"),
    (reduce_pickle(glob("numpy", "dtype"), b")\x81"), "the opcode NEWOBJ"),
    (b"(c" + b"posix\nsystem\nS'true'\no.", "the global posix.system"),          # OBJ via a refused global
    (b"\x80\x02X\x03\x00\x00\x00abcQ.", "a persistent id"),
    # containers: scalar dict keys only (hashing a deeply nested tuple key crashes), items into dicts and lists
    (reduce_pickle(b"}N" + T1 + b"Ns"), "a dict key of type tuple"),
    (reduce_pickle(b"]K\x00K\x01s"), "items added to a list"),
    (reduce_pickle(b"}K\x00a"), "items added to a dict"),
    (reduce_pickle(glob("numpy", "dtype"), b"(K\x00e"), "items added to a _Recipe"),
    (b"\x80\x04\x8f(K\x01\x90.", "the opcode EMPTY_SET"),
])
def test_refused_constructs(tmp_path, raw, refused):
    path = tmp_path / "batch"
    path.write_bytes(raw)
    with pytest.raises(safe_pickle.RefusedPickleError, match="refused to load") as caught:
        safe_pickle.load(path, what="a CIFAR python-format batch")
    assert refused in str(caught.value) and "\n" not in str(caught.value)


def test_deeply_nested_dict_key_is_refused_not_a_crash(tmp_path):
    """A dict key nested a million tuples deep (1 MB of TUPLE1): hashing it overflows the C stack, and
    plain pickle.load dies of SIGSEGV. In a subprocess, so a crash fails this test instead of the session."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02}N" + T1 * 1_000_000 + b"Ns.")
    code = ("import sys; from vggcore.data import safe_pickle\n"
            "try: safe_pickle.load(sys.argv[1])\n"
            "except safe_pickle.RefusedPickleError as err: print(err)")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "it holds a dict key of type tuple" in result.stdout


def test_memo_bomb_costs_nothing(tmp_path):
    """LONG_BINPUT at index 2**32 - 1: the C unpickler would size its memo table to 64 GiB for this 10-byte
    file; the restricted reader's dict memo holds one entry."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02Nr" + struct.pack("<I", 2**32 - 1) + b".")
    tracemalloc.start()
    try:
        assert safe_pickle.load(path) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    with pytest.raises(DataFileError, match="holds a NoneType, not a dict"):
        read_cifar_file(path, b"labels")


def test_large_declared_lengths_cannot_allocate_beyond_the_file(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"abc")  # BINBYTES8 claiming a terabyte
    with pytest.raises(safe_pickle.UnreadablePickleError, match="is not a CIFAR python-format batch"):
        safe_pickle.load(path, what="a CIFAR python-format batch")


@pytest.mark.parametrize("batch,match", [
    ({b"data": [[0] * 3072], b"labels": [0]}, "b'data' is list, not a numpy array"),
    ({b"data": np.zeros((1, 3000), np.uint8), b"labels": [0]}, "not a multiple of 3 x 32 x 32"),
    ({b"data": np.full((1, 3072), 300, np.int64), b"labels": [0]}, "outside 0..255"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"fine": [0]}, "no b'labels' entry; it has b'data', b'fine'"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [b"cat"]}, "not a list of integer labels"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [2**70]}, "beyond int64"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, r"label 10 in b'labels' is outside 0..9"),
    ([1, 2], "holds a list, not a dict"),
])
def test_malformed_batches_are_one_line_errors(tmp_path, batch, match):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataFileError, match=match) as caught:
        read_cifar_file(path, b"labels", classes=10)
    assert isinstance(caught.value, UserError) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_truncated_and_foreign_files(tmp_path):
    folder = write_cifar10(tmp_path, WRITERS["py2-protocol2"])
    raw = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(safe_pickle.UnreadablePickleError, match="data_batch_2 is not a CIFAR python-format batch"):
        load(DataConfig("cifar10", data_root=str(tmp_path)), 32)
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match=r"data_batch_2 is not a CIFAR python-format batch \(UnpicklingError"):
        load(DataConfig("cifar10", data_root=str(tmp_path)), 32)


def test_missing_data_roots_are_user_errors(tmp_path):
    for dataset in ("cifar10", "cifar100"):
        with pytest.raises(DataRootError) as caught:
            load(DataConfig(dataset, data_root=str(tmp_path)), 32)
        assert isinstance(caught.value, UserError) and isinstance(caught.value, FileNotFoundError)


# ------------------------------------------------------------------------------------- the command line
def test_cli_refuses_a_malicious_batch_in_one_line_and_runs_nothing(tmp_path):
    folder = write_cifar10(tmp_path / "data", WRITERS["py2-protocol2"])
    pwned = tmp_path / "PWNED"
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Payload(os.system, f"touch {pwned}"),
                                                        b"labels": [0]}, protocol=2))
    result = subprocess.run([sys.executable, "-m", "vggcore", "train", "--dataset", "cifar10", "--data-root",
                             str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--epochs", "1", "--quiet"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("error: refused to load ") and "data_batch_1" in lines[0]
    assert f"{os.system.__module__}.system" in lines[0]
    assert not pwned.exists()


# ------------------------------------------------------------------------------------- image folders
def png_bytes(rng, h, w) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def image_folder(root, per_class=2):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                (root / split / cls / f"{i}.png").write_bytes(png_bytes(rng, 40, 50))
    return root


def folder_loaders(root, workers=0):
    from vggcore.data.folder import loaders

    return loaders(DataConfig("imagefolder", data_root=str(root), num_workers=workers, augment="none"), 32, 4, 0)


def test_truncated_png_is_an_error_naming_it(tmp_path):
    root = image_folder(tmp_path)
    bad = root / "train" / "dog" / "broken.png"
    raw = png_bytes(np.random.default_rng(1), 40, 50)
    bad.write_bytes(raw[:len(raw) // 2])
    with pytest.raises(DataFileError, match=r"broken.png is not a readable image \(OSError: .*truncated") as caught:
        folder_loaders(root)
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)


def test_image_above_the_pixel_limit_is_refused_unread(tmp_path, monkeypatch):
    root = image_folder(tmp_path)
    big = root / "val" / "cat" / "huge.png"
    big.write_bytes(png_bytes(np.random.default_rng(1), 60, 70))       # 4,200 pixels; the others 2,000
    monkeypatch.setenv("VGGBENCH_MAX_IMAGE_PIXELS", "4199")
    train, val, _, _ = folder_loaders(root)   # the training images are fine
    with pytest.raises(DataFileError, match=r"huge.png: 70 x 60 = 4,200 pixels is above the limit of 4,199 "
                                            r"\(VGGBENCH_MAX_IMAGE_PIXELS sets it\)"):
        list(val)
    monkeypatch.setenv("VGGBENCH_MAX_IMAGE_PIXELS", "4200")            # at the limit: read
    assert sum(len(y) for _, y in folder_loaders(root)[1]) == 5


def test_pixel_limit_does_not_depend_on_pils_warning_band(tmp_path, monkeypatch):
    """PIL only warns between 1x and 2x its own limit; the reader's limit is one sharp threshold, and PIL's
    own refusal above 2x is reported the same way."""
    import warnings

    from PIL import Image

    from vggcore.data.folder import ImageReader

    path = tmp_path / "x.png"
    path.write_bytes(png_bytes(np.random.default_rng(0), 45, 45))       # 2,025 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)                # in PIL's warning band
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ImageReader(3000)(str(path)).size == (45, 45)             # no warning, read
    with pytest.raises(DataFileError, match="2,025 pixels is above the limit of 2,024"):
        ImageReader(2024)(str(path))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)                # above PIL's 2x: PIL refuses
    with pytest.raises(DataFileError, match="x.png: refused as a possible decompression bomb"):
        ImageReader(3000)(str(path))


@pytest.mark.parametrize("value", ["0", "-5", "lots", "1e6"])
def test_bad_pixel_limit_setting(tmp_path, monkeypatch, value):
    monkeypatch.setenv("VGGBENCH_MAX_IMAGE_PIXELS", value)
    with pytest.raises(UserError, match="VGGBENCH_MAX_IMAGE_PIXELS=.*positive whole number"):
        folder_loaders(image_folder(tmp_path))


def test_bad_image_in_a_worker_is_still_one_line(tmp_path):
    """A DataLoader worker's exception comes back rebuilt from its traceback text; DataFileError keeps the
    one line naming the file."""
    root = image_folder(tmp_path)
    (root / "val" / "dog" / "empty.png").write_bytes(b"")
    _, val, _, _ = folder_loaders(root, workers=1)
    with pytest.raises(DataFileError) as caught:
        list(val)
    message = str(caught.value)
    assert message.endswith("empty.png is not a readable image (UnidentifiedImageError: cannot identify image "
                            f"file {str(root / 'val' / 'dog' / 'empty.png')!r}); replace or delete it and run again")
    assert "\n" not in message and not message.startswith("Caught")


def test_imagefolder_layout_errors_are_user_errors(tmp_path):
    root = image_folder(tmp_path)
    (root / "val" / "bird").mkdir()          # a class folder with no images: torchvision's FileNotFoundError
    with pytest.raises(DataRootError, match=r"val: Found no valid file for the classes bird"):
        folder_loaders(root)
    (root / "val" / "bird").rmdir()
    (root / "val" / "dog").rename(root / "val" / "wolf")
    with pytest.raises(DataRootError, match=r"different class folders \(dog, wolf are in one only\)"):
        folder_loaders(root)
    with pytest.raises(DataRootError, match="is not a directory"):
        folder_loaders(tmp_path / "nope")


@pytest.mark.slow
def test_cli_truncated_val_image_read_by_a_worker_is_one_line(tmp_path):
    """Val images are read only by DataLoader workers (the CLI's default of 2): still one line, exit 2."""
    root = image_folder(tmp_path / "images")
    raw = png_bytes(np.random.default_rng(1), 40, 50)
    (root / "val" / "dog" / "broken.png").write_bytes(raw[:len(raw) // 2])
    result = subprocess.run([sys.executable, "-m", "vggcore", "train", "--dataset", "imagefolder", "--data-root",
                             str(root), "--epochs", "1", "--width", "0.125", "--batch-size", "4", "--quiet"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {root / 'val' / 'dog' / 'broken.png'} is not a readable image (OSError: image file is truncated); "
        "replace or delete it and run again"]
