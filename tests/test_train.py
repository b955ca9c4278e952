import copy
import dataclasses
import json
import subprocess
import sys

import pytest
import torch

import vggcore.config
import vggcore.data.batches
import vggcore.evaluate.batchnorm
import vggcore.evaluate.score
import vggcore.train.epoch
import vggcore.train.loop
import vggcore.train.trainer
from vggcore import VGGConfig
from vggcore.files import CheckpointError
from vggcore.train.checkpoint import load_checkpoint
from vggcore.config import DataConfig
from vggcore.config import TrainConfig
from vggcore.train.loop import train
from vggcore.threads import torch_threads

MODEL = VGGConfig(arch="A", batch_norm=True, width=0.125, image_size=32)
# Reproducibility, resumption, schedules and refusals are not about learning: 256 random images (three batches
# of 64 an epoch), with the paper's random crops and flips so that every stream of the run is exercised.
# What learns (LEARNS below) trains on the digits.
DATA = DataConfig("synthetic", augment="paper", synthetic_samples=256)
TRAIN = TrainConfig(epochs=3, batch_size=64, lr=0.05, schedule="step", step_epochs=1)


def fit(tmp_path=None, model=MODEL, data=DATA, cfg=TRAIN, **kw):
    return train(model, data, cfg, out=tmp_path, progress=False, **kw)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted run of MODEL, DATA, TRAIN into a folder, read (never written) by the tests below.
    Returns (its result, its folder)."""
    out = tmp_path_factory.mktemp("full")
    return fit(out), out


@pytest.mark.xdist_group("train_full_run")  # one full_run under `-n 2 --dist loadgroup`
def test_history_and_final_metrics(full_run):
    result, tmp_path = full_run
    assert result["status"] == "ok" and len(result["history"]) == 3
    row = result["history"][0]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_top1_error", "val_top5_error", "lr",
                "epoch_seconds", "images_per_s", "data_fraction"):
        assert key in row
    assert [h["lr"] for h in result["history"]] == pytest.approx([0.05, 0.005, 0.0005])
    assert 0 <= result["final"]["test_top1_error"] <= 1 and result["config"]["model"]["num_classes"] == 10
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["final"] == result["final"] and on_disk["provenance"]["versions"]["torch"] == torch.__version__


@pytest.mark.xdist_group("train_full_run")  # one full_run under `-n 2 --dist loadgroup`
def test_same_seed_same_metrics_and_different_seed_differs(full_run):
    a, b = full_run[0], fit()  # a saved its checkpoints, b did not: saving changes no figure
    c = fit(cfg=TrainConfig(**{**TRAIN.__dict__, "seed": 1}))
    strip = lambda r: [{k: v for k, v in h.items() if "second" not in k and "per_s" not in k and "fraction" not in k}
                       for h in r["history"]]
    assert strip(a) == strip(b) and a["final"]["test_loss"] == b["final"]["test_loss"]
    assert strip(a) != strip(c)


@pytest.mark.xdist_group("train_full_run")  # one full_run under `-n 2 --dist loadgroup`
def test_resume_after_interruption_equals_uninterrupted(tmp_path, full_run):
    full = full_run[0]

    class Stop(Exception):
        pass

    def interrupt(row):
        if row["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        fit(tmp_path / "cut", on_epoch=interrupt)
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["status"] == "running"
    resumed = fit(tmp_path / "cut")
    assert resumed["resumed_from_epoch"] == 2
    assert resumed["final"]["test_loss"] == full["final"]["test_loss"]
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in full["history"]]
    again = fit(tmp_path / "cut")
    assert again["resumed"] == "complete" and again["final"] == resumed["final"]


def test_a_resumed_run_keeps_the_thread_count_it_started_with(tmp_path, capsys):
    """Results depend on torch's thread count (reduction order): a run cut on 1 thread and resumed in a process of
    2 finishes its epochs on 1, says so, and leaves the process's own count as it found it."""
    class Stop(Exception):
        pass

    def interrupt(row):
        if row["epoch"] == 1:
            raise Stop

    with torch_threads(1):
        full = fit(tmp_path / "full")
        with pytest.raises(Stop):
            fit(tmp_path / "cut", on_epoch=interrupt)
    with torch_threads(2):
        resumed = fit(tmp_path / "cut")
        assert torch.get_num_threads() == 2
    assert resumed["resumed_from_epoch"] == 1 and resumed["rank_threads"] == [1]
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in full["history"]]
    assert "resumed on 1 torch thread(s), as the run started" in capsys.readouterr().err


def test_gradient_accumulation_keeps_the_effective_batch():
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, schedule="constant")
    model = VGGConfig(arch="A", width=0.125, image_size=32, dropout=0.0)  # no BN: batch statistics would differ
    whole = fit(model=model, cfg=cfg)
    split = fit(model=model, cfg=TrainConfig(**{**cfg.__dict__, "micro_batch": 16}))
    assert split["history"][0]["val_loss"] == pytest.approx(whole["history"][0]["val_loss"], rel=1e-4)


def test_huge_lr_is_marked_diverged(tmp_path):
    model = VGGConfig(arch="A", width=0.125, image_size=32)
    result = fit(tmp_path, model=model, cfg=TrainConfig(epochs=3, batch_size=64, lr=1e6, schedule="constant"))
    assert result["status"] == "diverged" and result["diverged_epoch"] == 1 and result["final"] is None
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "diverged"


def test_corrupt_checkpoint_is_refused_and_kept(tmp_path):
    def stop(row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path, on_epoch=stop)
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt or unreadable.*move it away"):
        fit(tmp_path)
    assert ckpt.read_bytes() == b"garbage"


def test_changed_config_under_same_out_is_refused(tmp_path):
    fit(tmp_path, cfg=TrainConfig(epochs=1, batch_size=64))
    with pytest.raises(CheckpointError, match="different configuration.*train.epochs: 1 there, 2 now"):
        fit(tmp_path, cfg=TrainConfig(epochs=2, batch_size=64))


# A tiny run that learns in two epochs: Glorot init and no dropout (torchvision's N(0, 0.01) FC init at width
# 0.125 sat at chance for 3 epochs, see NOTES), constant lr, batch 32, no augmentation.
LEARNS = dict(model=VGGConfig(arch="A", batch_norm=True, width=0.125, image_size=32, init="xavier", dropout=0.0),
              data=DataConfig("digits", augment="none"),
              cfg=TrainConfig(epochs=2, batch_size=32, lr=0.05, schedule="constant"))


def spy_on_first_conv(monkeypatch):
    """Record, for every forward through the model `train` builds, the first conv's output dtype and whether
    its input and weight are channels_last."""
    seen = []
    real_build = vggcore.train.trainer.build

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        cl = torch.channels_last
        model.features[0].register_forward_hook(lambda mod, inp, out: seen.append(
            (out.dtype, inp[0].is_contiguous(memory_format=cl), mod.weight.is_contiguous(memory_format=cl))))
        return model

    monkeypatch.setattr(vggcore.train.trainer, "build", build)
    return seen


def test_training_learns(monkeypatch):
    seen = spy_on_first_conv(monkeypatch)
    result = fit(**LEARNS)
    # chance is 90% error on ten digits; images and labels out of step would stay there
    assert result["status"] == "ok" and result["final"]["test_top1_error"] < 0.4
    assert result["history"][1]["train_accuracy"] > result["history"][0]["train_accuracy"] > 0.3
    assert seen and all(s == (torch.float32, False, False) for s in seen)


def test_bf16_and_channels_last_train(monkeypatch):
    seen = spy_on_first_conv(monkeypatch)
    cfg = dataclasses.replace(LEARNS["cfg"], bf16=True, channels_last=True)
    result = fit(**{**LEARNS, "cfg": cfg})
    assert result["status"] == "ok" and result["final"]["test_top1_error"] < 0.4
    # every forward, training and evaluation, ran under bf16 autocast on NHWC input and weights
    train_batches = cfg.epochs * (1257 // cfg.batch_size)  # 1,257 training digits; a short last batch is dropped
    assert len(seen) > train_batches and all(s == (torch.bfloat16, True, True) for s in seen)


def test_init_from_a_pretrains_and_copies_the_trained_a(tmp_path, monkeypatch):
    copies = []
    real_init_from = vggcore.train.loop.init_from

    def spy(deeper, trained_a):
        fresh = {k: v.clone() for k, v in deeper.state_dict().items()}
        real_init_from(deeper, trained_a)
        copies.append((fresh, copy.deepcopy(deeper.state_dict()), copy.deepcopy(trained_a.state_dict())))
        return deeper

    monkeypatch.setattr(vggcore.train.loop, "init_from", spy)
    model = VGGConfig(arch="B", batch_norm=True, width=0.125, image_size=32)
    result = fit(tmp_path, model=model, cfg=TrainConfig(epochs=1, batch_size=64, init_from_a_epochs=1))
    assert result["status"] == "ok" and result["pretrain"]["epochs"] == 1
    assert json.loads((tmp_path / "pretrain-A" / "metrics.json").read_text())["status"] == "ok"
    (fresh, b, a), = copies
    # the A handed over is the pretrained one: its weights are the pretrain checkpoint's, not its init
    pretrained = load_checkpoint(tmp_path / "pretrain-A" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], pretrained[k]) for k in pretrained)
    torch.manual_seed(TrainConfig().seed)
    a_init = vggcore.train.loop.build(dataclasses.replace(model, arch="A", num_classes=10)).state_dict()
    assert not torch.equal(a["features.0.weight"], a_init["features.0.weight"])
    # B's conv1_1, conv2_1, conv3_1, conv3_2 (+ their BN) and fc6-fc8 now hold A's values; conv1_2 kept B's init
    pairs = {"features.0": "features.0", "features.1": "features.1", "features.7": "features.4",
             "features.8": "features.5", "features.14": "features.8", "features.15": "features.9",
             "features.17": "features.11", "features.18": "features.12",
             **{f"classifier.{i}": f"classifier.{i}" for i in (0, 3, 6)}}
    for dst, src in pairs.items():
        for key in [k for k in a if k.startswith(src + ".")]:
            assert torch.equal(b[dst + key[len(src):]], a[key]), (dst, key)
    assert torch.equal(b["features.3.weight"], fresh["features.3.weight"])
    assert not torch.equal(b["features.0.weight"], fresh["features.0.weight"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(schedule="poly"), "unknown schedule 'poly'"),
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(micro_batch=500, batch_size=64), "micro_batch must be between 1 and batch_size"),
])
def test_bad_train_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vggcore", "train", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_cli_trains_resumes_and_reports_completion(tmp_path):
    args = ["--arch", "A", "--batch-norm", "--width", "0.125", "--dataset", "synthetic", "--epochs", "1",
            "--out", str(tmp_path / "r"), "--quiet"]
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    assert "test top-1 error" in first.stdout
    second = cli(*args)
    assert second.returncode == 0 and "already complete" in second.stderr


@pytest.mark.parametrize("args,match", [
    (["--dataset", "cifar10", "--data-root", "/nonexistent"], "data root /nonexistent is not a directory"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--augment", "cutout"], "unknown augmentation 'cutout'"),
    (["--schedule", "poly"], "unknown schedule 'poly'"),
    (["--image-size", "40"], "multiple of 32"),
])
def test_cli_errors_are_one_line(args, match):
    result = cli(*args, "--epochs", "1", "--quiet")
    assert result.returncode == 2
    assert match in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
