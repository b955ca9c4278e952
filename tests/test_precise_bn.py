"""Precise BatchNorm before every evaluation (`TrainConfig.bn_recalibrate`, `vggcore.evaluate.batchnorm.recalibrate_bn`): the
statistics evaluation uses are recomputed, and nothing of the training trajectory changes."""

import dataclasses

import pytest
import torch
from torch import nn

from vggcore import VGGConfig
from vggcore.cli.main import main
from vggcore.config import DataConfig
from vggcore.data.batches import Batches
from vggcore.config import TrainConfig
from vggcore.evaluate.batchnorm import recalibrate_bn
from vggcore.train.loop import train
from vggcore.validation import ConfigError

MODEL = VGGConfig(arch="A", batch_norm=True, width=0.125, image_size=32, init="xavier", dropout=0.5)
# A small synthetic set (3 training batches an epoch): the properties below hold for any data, and digits' 20
# batches an epoch cost seconds per test
DATA = DataConfig("synthetic", augment="crop", synthetic_samples=256)
TRAIN = TrainConfig(epochs=2, batch_size=64, lr=0.05, schedule="constant", bn_recalibrate=3)
TIMING = ("epoch_seconds", "images_per_s", "data_seconds", "data_fraction")


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


class Seen(nn.Module):
    """Records whether it ran in training mode."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return x


def test_running_statistics_become_the_batches_average_and_nothing_else_changes():
    torch.manual_seed(0)
    seen = Seen()
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), seen).train()
    batches = [torch.randn(8, 3, 6, 6) for _ in range(2)]
    with torch.no_grad():
        means = [model[0](x).mean(dim=(0, 2, 3)) for x in batches]
        variances = [model[0](x).var(dim=(0, 2, 3), unbiased=True) for x in batches]
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "tracked" not in k}
    rng = torch.get_rng_state()
    recalibrate_bn(model, batches)
    bn = model[1]
    assert torch.allclose(bn.running_mean, (means[0] + means[1]) / 2, atol=1e-6)
    assert torch.allclose(bn.running_var, (variances[0] + variances[1]) / 2, atol=1e-5)
    assert bn.momentum == 0.1 and model.training and bn.training and model[2].training   # modes restored
    assert seen.modes == [False, False]               # dropout and the rest off while it ran: no random draw
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())


def test_it_changes_what_evaluation_sees_and_not_the_training():
    plain = train(MODEL, DATA, dataclasses.replace(TRAIN, bn_recalibrate=0), progress=False)
    precise = train(MODEL, DATA, TRAIN, progress=False)
    for a, b in zip(plain["history"], precise["history"]):
        assert (a["train_loss"], a["train_accuracy"]) == (b["train_loss"], b["train_accuracy"])   # bit for bit
    assert [h["val_loss"] for h in plain["history"]] != [h["val_loss"] for h in precise["history"]]
    assert precise["config"]["train"]["bn_recalibrate"] == 3


def test_a_resumed_run_with_it_equals_the_uninterrupted_one(tmp_path):
    full = train(MODEL, DATA, TRAIN, out=tmp_path / "full", progress=False)

    class Stop(Exception):
        pass

    def stop(row):
        raise Stop

    with pytest.raises(Stop):
        train(MODEL, DATA, TRAIN, out=tmp_path / "cut", progress=False, on_epoch=stop)
    resumed = train(MODEL, DATA, TRAIN, out=tmp_path / "cut", progress=False)
    assert resumed["resumed_from_epoch"] == 1
    strip = lambda r: [{k: v for k, v in h.items() if k not in TIMING} for h in r["history"]]  # noqa: E731
    assert strip(resumed) == strip(full) and resumed["final"]["test_loss"] == full["final"]["test_loss"]


def test_streamed_data_and_bad_values_are_refused():
    with pytest.raises(ConfigError, match="bn_recalibrate draws its batches from the in-memory training split"):
        Batches(DataConfig("imagefolder", data_root="/no/such/folder"), MODEL, TRAIN)
    with pytest.raises(ConfigError, match="bn_recalibrate must be an integer >= 0, got -1"):
        TrainConfig(bn_recalibrate=-1)

def test_the_cli_names_the_option(capsys):
    assert main(["train", "--bn-recalibrate", "-1", "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --bn-recalibrate -1: bn_recalibrate must be an integer >= 0, got -1"]
