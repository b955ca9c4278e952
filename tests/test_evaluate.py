import pytest
import torch

from vggcore import build
from vggcore.data import DataConfig, load
from vggcore.evaluate import evaluate, topk_errors


def test_topk_errors():
    logits = torch.tensor([[0.0, 1, 2, 3, 4, 5], [5.0, 4, 3, 2, 1, 0], [1.0, 0, 0.5, 0.2, 0.3, 9]])
    labels = torch.tensor([5, 5, 2])
    assert topk_errors(logits, labels) == (2, 1)  # sample 2: rank 6 (top-5 miss); sample 3: rank 3


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    data = load(DataConfig("digits", augment="none"), 32)
    model = build("A", width=0.125, image_size=32, num_classes=10, batch_norm=True).eval()
    return model, data.test.images[:40], data.test.labels[:40], data.mean_rgb


@pytest.mark.parametrize("method,scales,flip", [
    ("centre", None, False), ("centre", None, True), ("dense", (32,), False), ("dense", (32, 40, 48), True),
    ("multicrop", (37,), False), ("multicrop", (37, 48), False),
])
def test_protocols_give_errors_in_range(setup, method, scales, flip):
    model, images, labels, mean = setup
    result = evaluate(model, images, labels, mean, method=method, scales=scales, flip=flip, grid=3)
    assert 0 <= result["top5_error"] <= result["top1_error"] <= 1


def test_dense_at_training_size_equals_centre(setup):
    model, images, labels, mean = setup
    a = evaluate(model, images, labels, mean, method="centre", scales=(32,))
    b = evaluate(model, images, labels, mean, method="dense", scales=(32,))
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4) and a["top1_error"] == b["top1_error"]


def test_bad_method_and_scale(setup):
    model, images, labels, mean = setup
    with pytest.raises(ValueError, match="unknown evaluation method"):
        evaluate(model, images, labels, mean, method="tencrop")
    with pytest.raises(ValueError, match="at least the training size"):
        evaluate(model, images, labels, mean, scales=(24,))
