import json
import subprocess
import sys

import pytest
import torch

from vggcore import VGGConfig
from vggcore.checkpoint import CheckpointError
from vggcore.data import DataConfig
from vggcore.train import TrainConfig, train

MODEL = VGGConfig(arch="A", batch_norm=True, width=0.125, image_size=32)
DATA = DataConfig("digits", augment="paper")
TRAIN = TrainConfig(epochs=3, batch_size=64, lr=0.05, schedule="step", step_epochs=1)


def fit(tmp_path=None, model=MODEL, data=DATA, cfg=TRAIN, **kw):
    return train(model, data, cfg, out=tmp_path, progress=False, **kw)


def test_history_and_final_metrics(tmp_path):
    result = fit(tmp_path)
    assert result["status"] == "ok" and len(result["history"]) == 3
    row = result["history"][0]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_top1_error", "val_top5_error", "lr",
                "epoch_seconds", "images_per_s", "data_fraction"):
        assert key in row
    assert [h["lr"] for h in result["history"]] == pytest.approx([0.05, 0.005, 0.0005])
    assert 0 <= result["final"]["test_top1_error"] <= 1 and result["config"]["model"]["num_classes"] == 10
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["final"] == result["final"] and on_disk["provenance"]["versions"]["torch"] == torch.__version__


def test_same_seed_same_metrics_and_different_seed_differs():
    a, b = fit(), fit()
    c = fit(cfg=TrainConfig(**{**TRAIN.__dict__, "seed": 1}))
    strip = lambda r: [{k: v for k, v in h.items() if "second" not in k and "per_s" not in k and "fraction" not in k}
                       for h in r["history"]]
    assert strip(a) == strip(b) and a["final"]["test_loss"] == b["final"]["test_loss"]
    assert strip(a) != strip(c)


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    full = fit(tmp_path / "full")

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


def test_init_from_a_pretrains_and_copies(tmp_path):
    model = VGGConfig(arch="B", batch_norm=True, width=0.125, image_size=32)
    result = fit(tmp_path, model=model, cfg=TrainConfig(epochs=1, batch_size=64, init_from_a_epochs=1))
    assert result["status"] == "ok" and result["pretrain"]["epochs"] == 1
    assert (tmp_path / "pretrain-A" / "metrics.json").exists()


def test_bf16_and_channels_last_train():
    result = fit(cfg=TrainConfig(epochs=1, batch_size=64, bf16=True, channels_last=True))
    assert result["status"] == "ok"


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
    args = ["--arch", "A", "--batch-norm", "--width", "0.125", "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet"]
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
