import pickle
from collections import Counter

import numpy as np
import pytest
import torch

from vggcore.config import DataConfig
from vggcore.data.datasets import DataRootError, Split, _digits, load, read_cifar_file
from vggcore.data.transforms import PCA_EIGVAL, PCA_EIGVEC, augment_batch, color_shift, sample_geometry
from vggcore.data.presets import PRESETS, Augment, preset


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_keep_shape_dtype_and_are_seeded(name):
    images = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8, generator=gen())
    mean = torch.tensor([0.5, 0.4, 0.3])
    args = (images, 32, 37, 48, preset(name), mean)
    a, b, c = augment_batch(*args, gen(1)), augment_batch(*args, gen(1)), augment_batch(*args, gen(2))
    assert a.shape == (6, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b)
    if name != "none":
        assert not torch.equal(a, c)


def test_crop_is_an_exact_pixel_crop_and_flip_mirrors():
    images = torch.randint(0, 256, (4, 3, 36, 36), dtype=torch.uint8, generator=gen())
    zero = torch.zeros(3)
    out = augment_batch(images, 32, 36, 36, Augment(crop=True), zero, gen(3))
    x = images.float() / 255
    for i in range(4):  # every output is some 32x32 window of the input
        windows = [x[i, :, t:t + 32, l:l + 32] for t in range(5) for l in range(5)]
        assert any(torch.allclose(out[i], w, atol=1e-5) for w in windows)
    centre = augment_batch(images, 32, 36, 36, Augment(), zero, gen(3))
    assert torch.allclose(centre, x[:, :, 2:34, 2:34], atol=1e-5)
    flipped = augment_batch(images, 32, 36, 36, Augment(flip=True), zero, gen(3))
    mirrored = [torch.allclose(flipped[i], centre[i].flip(-1), atol=1e-5) for i in range(4)]
    plain = [torch.allclose(flipped[i], centre[i], atol=1e-5) for i in range(4)]
    assert all(m or p for m, p in zip(mirrored, plain)) and any(mirrored)


def test_mean_subtraction():
    images = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    out = augment_batch(images, 32, 32, 32, Augment(), torch.tensor([0.1, 0.2, 0.3]), gen())
    assert torch.allclose(out[:, :, 0, 0], torch.tensor([128 / 255 - 0.1, 128 / 255 - 0.2, 128 / 255 - 0.3]))


def test_pca_colour_shift_has_expected_mean_and_covariance():
    n = 20000
    shifted = color_shift(torch.zeros(n, 3, 1, 1), gen(5))[:, :, 0, 0]       # (n, 3): the shift itself
    expected_cov = PCA_EIGVEC @ torch.diag((0.1 * PCA_EIGVAL) ** 2) @ PCA_EIGVEC.T
    assert shifted.mean(0).abs().max() < 4 * (0.1 * PCA_EIGVAL[0]) / n ** 0.5
    assert torch.allclose(torch.cov(shifted.T), expected_cov, atol=2e-5, rtol=0.05)


def test_scale_jittering_draws_s_in_range():
    torch.manual_seed(0)
    scales = []
    for seed in range(200):
        grid = sample_geometry(1, 32, 37, 74, Augment(crop=True, jitter=True), gen(seed), "cpu")
        span = float(grid[0, 0, -1, 0] - grid[0, 0, 0, 0]) / 2 * 32 / 31   # crop side / image side
        scales.append(32 / span)
    scales = torch.tensor(scales)
    assert scales.min() >= 37 - 1e-3 and scales.max() <= 74 + 1e-3
    assert scales.min() < 42 and scales.max() > 69  # covers the range


def samples(*splits):
    """How many times each (image bytes, label) pair occurs in the given splits."""
    return Counter((img.numpy().tobytes(), int(lab)) for s in splits for img, lab in zip(s.images, s.labels))


def test_digits_split_is_fixed_and_disjoint():
    a = load(DataConfig("digits", augment="none"), 32)
    b = load(DataConfig("digits", augment="none"), 32)
    assert (len(a.train), len(a.val), len(a.test)) == (1257, 270, 270)
    assert a.train.images.shape[1:] == (3, 37, 37) and a.train.images.dtype == torch.uint8
    assert torch.equal(a.test.images, b.test.images) and torch.equal(a.test.labels, b.test.labels)
    assert a.num_classes == 10 and 0 < float(a.mean_rgb[0]) < 1
    # Every one of the 1,797 samples lands in exactly one split, with its own label: the three splits together
    # are the whole set, and a pair seen in two splits must occur that often in the data set itself.
    whole = samples(Split(*_digits(37)))
    train, val, test = samples(a.train), samples(a.val), samples(a.test)
    assert train + val + test == whole
    for x, y in ((train, val), (train, test), (val, test)):
        assert all(x[k] + y[k] <= whole[k] for k in x.keys() & y.keys())
    assert a.mean_rgb == pytest.approx(a.train.images.float().mean(dim=(0, 2, 3)) / 255)  # training split only


def write_cifar(root, name="cifar-10-batches-py", files=None, label_key=b"labels", n=8):
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, f in enumerate(files or [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: [(i + j) % 10 for j in range(n)],
                 b"batch_label": b"tiny"}
        with open(folder / f, "wb") as fh:
            pickle.dump(batch, fh)
    return folder


def test_cifar10_loader_reads_the_python_format(tmp_path):
    folder = write_cifar(tmp_path)
    data = load(DataConfig("cifar10", data_root=str(tmp_path), val_fraction=0.25), 32)
    assert len(data.train) + len(data.val) == 40 and len(data.test) == 8
    files = [Split(*read_cifar_file(folder / f"data_batch_{i}", b"labels")) for i in range(1, 6)]
    assert samples(data.train) + samples(data.val) == samples(*files)  # validation held out of training
    assert not samples(data.train).keys() & samples(data.val).keys()
    images, labels = read_cifar_file(folder / "data_batch_1", b"labels")
    raw = pickle.load(open(folder / "data_batch_1", "rb"), encoding="bytes")
    assert torch.equal(images[0].flatten(), torch.from_numpy(raw[b"data"][0]))  # R plane, G plane, B plane
    assert labels.tolist() == raw[b"labels"]
    # pointing at the inner folder works too
    assert len(load(DataConfig("cifar10", data_root=str(folder)), 32).test) == 8


def test_cifar100_uses_fine_labels(tmp_path):
    write_cifar(tmp_path, "cifar-100-python", ["train", "test"], b"fine_labels", n=20)
    data = load(DataConfig("cifar100", data_root=str(tmp_path)), 32)
    assert data.num_classes == 100 and len(data.test) == 20


def test_missing_cifar_says_what_and_where(tmp_path):
    with pytest.raises(DataRootError, match=r"data_batch_1.*cifar-10-batches-py.*cs.toronto.edu"):
        load(DataConfig("cifar10", data_root=str(tmp_path)), 32)
    with pytest.raises(DataRootError, match="is not a directory"):
        load(DataConfig("cifar10", data_root=str(tmp_path / "nope")), 32)


def test_malformed_cifar_file(tmp_path):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="data_batch_3 is not a CIFAR python-format batch"):  # UserError too
        load(DataConfig("cifar10", data_root=str(tmp_path)), 32)


@pytest.mark.parametrize("kwargs,match", [
    (dict(dataset="mnist"), "unknown dataset 'mnist'"),
    (dict(augment="mixup"), "unknown augmentation 'mixup'"),
    (dict(dataset="cifar10"), "needs a data_root"),
])
def test_bad_data_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataConfig(**kwargs)


def test_scale_below_crop_is_refused():
    with pytest.raises(ValueError, match="smaller than the 32px training crop"):
        DataConfig(scale=28).scales(32)


def test_imagefolder_loader(tmp_path):
    from PIL import Image

    from vggcore.data.folder import loaders

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    train, val, classes, mean = loaders(DataConfig("imagefolder", data_root=str(tmp_path), num_workers=0,
                                                   augment="paper_jitter"), 32, 4, 0)
    x, y = next(iter(train))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8 and classes == 2 and mean.shape == (3,)
    with pytest.raises(DataRootError, match="imagefolder expects"):
        loaders(DataConfig("imagefolder", data_root=str(tmp_path / "train")), 32, 4, 0)


def test_digits_are_read_without_importing_sklearn_datasets_and_equal_load_digits():
    """Every training process loads digits: `sklearn.datasets` costs about 1.2 s to import, for a 1797-line CSV
    inside scikit-learn's own package. The images and labels are load_digits' exactly."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    code = ("import sys; from vggcore.data.datasets import _digits; x, y = _digits(8); "
            "print(tuple(x.shape), 'sklearn.datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[-1] == "False", out
    x, y = _digits(8)
    digits = load_digits()
    expected = (torch.from_numpy(digits.images).float()[:, None] / 16.0 * 255).round().to(torch.uint8)
    assert torch.equal(x[:, :1], expected) and torch.equal(y, torch.from_numpy(digits.target).long())
