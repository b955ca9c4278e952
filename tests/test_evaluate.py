"""The test protocols on a tiny trained net (VGG-A with BatchNorm at width 0.125 on 32 px digits): how they relate.

The net's convolutions keep their seeded initialisation and its fc6-fc8 are fitted to the training split's centre
crops (a few hundred full-batch steps on features computed once): a trained classifier in a couple of seconds,
confident and right on most test images, so agreement between protocols is agreement between real posteriors.
"""

import pytest
import torch
import torch.nn.functional as F

from vggcore import build, fully_convolutional
from vggcore.config import DataConfig
from vggcore.data.datasets import load
from vggcore.errors import UserError
from vggcore.evaluate.score import (
    EmptySplitError,
    evaluate,
    grid_offsets,
    protocol_probabilities,
    score,
    score_protocol,
    topk_errors,
)
from vggcore.evaluate.protocols import Protocol, ProtocolError, resolve
from vggcore.data.transforms import centre_crop, rescale
from vggcore.threads import torch_threads

SIZE, S = 32, 37   # the training crop and vggcore.data.datasets's default S = round(32 * 256 / 224)
IMAGES = 40        # test images: the comparisons are per image, so a few dozen show a disagreement


def test_topk_errors():
    logits = torch.tensor([[0.0, 1, 2, 3, 4, 5], [5.0, 4, 3, 2, 1, 0], [1.0, 0, 0.5, 0.2, 0.3, 9]])
    labels = torch.tensor([5, 5, 2])
    assert topk_errors(logits, labels) == (2, 1)  # sample 2: rank 6 (top-5 miss); sample 3: rank 3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These ops are tiny (40 images, width 0.125): a second thread only adds contention (3-4x slower on a shared
    2-core machine), and one thread fixes the results' summation order."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    data = load(DataConfig("digits", augment="none"), SIZE)          # stored at S = 37 px
    model = build("A", width=0.125, image_size=SIZE, num_classes=10, batch_norm=True, dropout=0.0).eval()
    train = data.train.images[:600]   # enough for a classifier right on most test images
    x = centre_crop(rescale(train.float() / 255 - data.mean_rgb[None, :, None, None], S), SIZE)
    with torch.no_grad():  # fc8 by ridge regression on the fc7 features of the training crops, onto +-1 targets
        feats = model.classifier[:-1](model.pool(model.features(x)).flatten(1))     # (N, 512)
        f = torch.cat([feats, torch.ones(len(feats), 1)], 1)
        target = F.one_hot(data.train.labels[:600], 10).float() * 2 - 1
        ridge = 1e-3 * f.pow(2).mean() * len(f) * torch.eye(f.shape[1])
        w = torch.linalg.solve(f.T @ f + ridge, f.T @ target) * 10                  # x10: confident posteriors
        model.classifier[-1].weight.copy_(w[:-1].T)
        model.classifier[-1].bias.copy_(w[-1])
    test = data.test
    return model, test.images[:IMAGES], test.labels[:IMAGES], data.mean_rgb


def views(name, scales=None, flip=None, crops=None):
    return resolve(Protocol(name, scales, flip, crops), SIZE, 1, S, S)


def test_the_net_is_trained(trained):
    model, images, labels, mean = trained
    errors = score_protocol(model, images, labels, mean, views("centre"))
    assert errors["top1_error"] < 0.4  # chance is 0.9
    assert errors["loss"] < 1.5       # and confident: uniform posteriors would give ln 10 = 2.3


def test_dense_equals_centre_when_the_test_scale_is_the_training_size(trained):
    model, images, labels, mean = trained
    for flip in (False, True):   # dense flips by default (the paper's section 3.2), centre does not
        centre = protocol_probabilities(model, images, mean, views("centre", (SIZE,), flip))
        dense = protocol_probabilities(model, images, mean, views("dense", (SIZE,), flip))
        torch.testing.assert_close(dense, centre, rtol=1e-4, atol=1e-6)
    a = score_protocol(model, images, labels, mean, views("centre", (SIZE,)))
    b = score_protocol(model, images, labels, mean, views("dense", (SIZE,), flip=False))
    assert a["top1_error"] == b["top1_error"] and a["loss"] == pytest.approx(b["loss"], rel=1e-5)


@pytest.mark.parametrize("scales", [(S,), (32, 37, 42)])
def test_one_crop_is_the_centre_crop(trained, scales):
    model, images, labels, mean = trained
    for flip in (False, True):
        one = protocol_probabilities(model, images, mean, views("multicrop", scales, flip, crops=1))
        centre = protocol_probabilities(model, images, mean, views("centre", scales, flip))
        torch.testing.assert_close(one, centre, rtol=0, atol=0)
    assert grid_offsets(5, 1) == [5 // 2] and grid_offsets(5, 3) == [0, 2, 5] and grid_offsets(0, 5) == [0] * 5


def mean_softmax(model, batch):
    with torch.no_grad():
        return model(batch).softmax(dim=1)


def test_flip_averages_each_view_and_its_mirror(trained):
    """As documented: the posterior is the mean softmax over every view and, with flip, each view's mirror."""
    model, images, _, mean = trained
    x = images.float() / 255 - mean[None, :, None, None]
    for q in (S, 42):   # odd spare pixels at 37: the mirror is of the crop, not a crop of the mirrored image
        crop = centre_crop(rescale(x, q), SIZE)
        by_hand = (mean_softmax(model, crop) + mean_softmax(model, crop.flip(-1))) / 2
        got = protocol_probabilities(model, images, mean, views("centre", (q,), flip=True))
        torch.testing.assert_close(got, by_hand, rtol=1e-5, atol=1e-7)
    # several scales: the mean over scales of each scale's (view + mirror) mean
    per_scale = [protocol_probabilities(model, images, mean, views("centre", (q,), flip=True)) for q in (32, 37, 42)]
    got = protocol_probabilities(model, images, mean, views("centre", (32, 37, 42), flip=True))
    torch.testing.assert_close(got, torch.stack(per_scale).mean(0), rtol=1e-5, atol=1e-7)
    # the combined protocol of Table 5 weighs the dense and the multi-crop posterior equally
    dense = protocol_probabilities(model, images, mean, views("dense", (32, 64), flip=True))
    crops = protocol_probabilities(model, images, mean, views("multicrop", (32, 64), flip=True, crops=2))
    both = protocol_probabilities(model, images, mean, views("dense+multicrop", (32, 64), flip=True, crops=2))
    torch.testing.assert_close(both, (dense + crops) / 2, rtol=1e-5, atol=1e-7)


def test_a_flip_changes_the_posterior(trained):
    """The mirror really is run: a digit's mirror image is another picture, so the posteriors differ."""
    model, images, _, mean = trained
    plain = protocol_probabilities(model, images, mean, views("centre"))
    flipped = protocol_probabilities(model, images, mean, views("centre", flip=True))
    assert (plain - flipped).abs().max() > 1e-3


def test_multicrop_runs_the_paper_count_of_views(trained):
    model, images, labels, mean = trained
    paper = views("multicrop")
    assert (paper.scales, paper.crops, paper.flip, paper.views) == ((32, 37, 42), 5, True, 150)
    errors = score_protocol(model, images[:4], labels[:4], mean, paper)
    assert 0 <= errors["top5_error"] <= errors["top1_error"] <= 1


def test_dense_on_a_larger_scale_runs_the_fully_convolutional_net(trained):
    """At 64 px the dense net scores a 2x2 map of windows and averages the class scores (then one softmax); its
    windows see their neighbours through the convolutions' padding, so this is not the mean of four crops."""
    model, images, _, mean = trained
    x = rescale(images.float() / 255 - mean[None, :, None, None], 64)
    with torch.no_grad():
        expected = fully_convolutional(model).eval()(x).softmax(dim=1)
        crops = torch.stack([model(x[..., t:t + 32, u:u + 32]).softmax(1) for t in (0, 32) for u in (0, 32)]).mean(0)
    got = protocol_probabilities(model, images, mean, views("dense", (64,), flip=False))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert (got - crops).abs().max() > 1e-3


def test_the_tensor_level_evaluate_still_works(trained):
    model, images, labels, mean = trained
    for method, scales, flip in [("centre", None, False), ("dense", (32, 64, 96), True), ("multicrop", (37,), False)]:
        result = evaluate(model, images, labels, mean, method=method, scales=scales, flip=flip, grid=3)
        assert 0 <= result["top5_error"] <= result["top1_error"] <= 1
    with pytest.raises(ProtocolError, match="unknown test protocol 'tencrop'; choose one of centre, dense"):
        evaluate(model, images, labels, mean, method="tencrop")
    with pytest.raises(ProtocolError, match="test scale 24 .* at least 32"):
        evaluate(model, images, labels, mean, scales=(24,))


def test_an_empty_split_is_a_user_error():
    model = build("A", width=0.125, image_size=SIZE, num_classes=10)
    with pytest.raises(EmptySplitError, match="nothing to evaluate: the split is empty") as caught:
        score(model, iter([]))
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
