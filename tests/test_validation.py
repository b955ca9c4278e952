"""Impossible configuration values are refused where they enter: the Python API (the frozen dataclasses), the
`vggcore train` options and study files, before any training, with the key, the value and what is allowed."""

import math
import subprocess
import sys

import pandas as pd
import pytest

from ablations import StudyError, expand, load_study
from ablations.cli import main as ablations_main
from ablations.execute import execute
from vggcore.cli.main import main as vggcore_main
from vggcore.config import VGGConfig
from vggcore.config import DataConfig
from vggcore.config import TrainConfig
from vggcore.validation import MIN_EFFECT, ConfigError, integer, number, option_value

INF, NAN = math.inf, math.nan


@pytest.mark.parametrize("cls,field,value,allowed", [
    (TrainConfig, "lr", INF, "> 0"), (TrainConfig, "lr", NAN, "> 0"), (TrainConfig, "lr", 0.0, "> 0"),
    (TrainConfig, "lr", -0.1, "> 0"), (TrainConfig, "lr", "0.1", "number"),
    (TrainConfig, "momentum", NAN, "[0, 1)"), (TrainConfig, "momentum", 1.0, "[0, 1)"),
    (TrainConfig, "momentum", -0.5, "[0, 1)"),
    (TrainConfig, "weight_decay", INF, ">= 0"), (TrainConfig, "weight_decay", -1e-4, ">= 0"),
    (TrainConfig, "gamma", 0.0, "(0, 1]"), (TrainConfig, "gamma", 1.5, "(0, 1]"), (TrainConfig, "gamma", NAN, "(0, 1]"),
    (TrainConfig, "step_epochs", 0, "positive integer"), (TrainConfig, "patience", -1, "integer >= 0"),
    (TrainConfig, "max_drops", -1, "integer >= 0"), (TrainConfig, "warmup_epochs", -2, "integer >= 0"),
    (TrainConfig, "init_from_a_epochs", -1, "integer >= 0"), (TrainConfig, "threads", 0, "positive integer"),
    (TrainConfig, "seed", 2 ** 70, "integer in [0, 9223372036854775807]"),
    (TrainConfig, "seed", -1, "integer in [0, 9223372036854775807]"), (TrainConfig, "seed", 1.5, "integer"),
    (TrainConfig, "bf16", "yes", "true or false"), (TrainConfig, "channels_last", 1, "true or false"),
    (TrainConfig, "eval_batch_size", True, "positive integer"), (TrainConfig, "device", "gpu", "cpu, cuda"),
    (TrainConfig, "device", "cuda:x", "cpu, cuda"),
    (VGGConfig, "width", INF, "(0, 64]"), (VGGConfig, "width", NAN, "(0, 64]"), (VGGConfig, "width", -1.0, "(0, 64]"),
    (VGGConfig, "width", True, "number"), (VGGConfig, "dropout", NAN, "[0, 1)"),
    (VGGConfig, "batch_norm", "no", "true or false"), (VGGConfig, "num_classes", 0, "positive integer"),
    (DataConfig, "val_fraction", NAN, "(0, 1)"), (DataConfig, "split_seed", 2 ** 64, "[0, 9223372036854775807]"),
    (DataConfig, "synthetic_samples", 0, "positive integer"), (DataConfig, "num_workers", -1, "integer >= 0"),
    (DataConfig, "scale", 0, "positive integer"), (DataConfig, "scale_max", 2.5, "integer"),
])
def test_impossible_value_is_refused_naming_key_value_and_allowed(cls, field, value, allowed):
    with pytest.raises(ValueError) as info:
        cls(**{field: value})
    message = str(info.value)
    assert field in message and repr(value) in message and allowed in message, message


def test_sane_values_still_pass():
    TrainConfig(lr=10.0, momentum=0.0, weight_decay=0, gamma=1, step_epochs=1, patience=0, max_drops=0,
                seed=2 ** 63 - 1, device="cuda:1", threads=None)
    VGGConfig(width=64, dropout=0)
    DataConfig(split_seed=0, scale=256, scale_max=None, num_workers=0)


# ------------------------------------------------------------------------------------------- vggcore train
@pytest.mark.parametrize("args,option,value", [
    (["--width", "inf"], "--width", "inf"), (["--width", "nan"], "--width", "nan"),
    (["--lr", "inf"], "--lr", "inf"), (["--lr", "-0.5"], "--lr", "-0.5"),
    (["--dropout", "nan"], "--dropout", "nan"), (["--seed", str(2 ** 70)], "--seed", str(2 ** 70)),
    (["--epochs", "0"], "--epochs", "0"), (["--warmup-epochs", "-1"], "--warmup-epochs", "-1"),
])
def test_train_cli_names_the_option(args, option, value, capsys):
    assert vggcore_main(["train", *args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {option} {value}:") and "must be" in err, err
    assert len(err.splitlines()) == 1


def test_train_cli_width_inf_is_one_line_without_traceback():
    result = subprocess.run([sys.executable, "-m", "vggcore", "train", "--width", "inf", "--quiet"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --width inf: width must be a finite number in (0, 64], got inf"]


def test_train_cli_seed_expression_names_the_option():
    result = subprocess.run([sys.executable, "-m", "vggcore", "train", "--seed", "2**70", "--quiet"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--seed" in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------------ studies
STUDY = """
[study]
name = "v"
seeds = {seeds}

[base.model]
arch = "A"
image_size = 32
{model}
[base.train]
epochs = 1
{train}
[base.data]
{data}
[factors.dropout]
levels.on = {{ "model.dropout" = 0.5 }}
levels.off = {{ "model.dropout" = {off} }}
"""


def study(tmp_path, seeds="[0]", model="width = 0.125", train="", data="", off="0.0"):
    path = tmp_path / "v.toml"
    path.write_text(STUDY.format(seeds=seeds, model=model, train=train, data=data, off=off))
    return path


@pytest.mark.parametrize("kwargs,key,value", [
    (dict(train="lr = inf"), "base.train.lr", "inf"),
    (dict(train="momentum = nan"), "base.train.momentum", "nan"),
    (dict(train="weight_decay = inf"), "base.train.weight_decay", "inf"),
    (dict(train="step_epochs = 0"), "base.train.step_epochs", "0"),
    (dict(model="width = inf"), "base.model.width", "inf"),
    (dict(model="width = nan"), "base.model.width", "nan"),
    (dict(off="nan"), "factors.dropout.levels.off.model.dropout", "nan"),
    (dict(seeds="[0, -3]"), "study.seeds", "-3"),
])
def test_study_file_impossible_value_refused_by_list(tmp_path, capsys, kwargs, key, value):
    path = study(tmp_path, **kwargs)
    assert ablations_main(["list", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err and f"'{key}'" in err and value in err and "must be" in err, err


def test_base_error_found_at_expansion_blames_base_not_a_variant(tmp_path):
    # micro_batch alone is fine; only with the base's batch_size is it impossible: no variant is to blame
    path = study(tmp_path, train="batch_size = 8\nmicro_batch = 16")
    with pytest.raises(StudyError) as info:
        expand(load_study(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "[base.train]" in message and "micro_batch" in message
    assert "variant" not in message and "dropout" not in message, message


def test_level_error_found_at_expansion_names_file_and_level(tmp_path):
    path = study(tmp_path, train="batch_size = 8")
    path.write_text(path.read_text() + '[factors.micro]\nlevels.none = {}\nlevels.big = { "train.micro_batch" = 16 }\n')
    with pytest.raises(StudyError) as info:
        expand(load_study(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "micro=big" in message
    assert "factors.micro.levels.big" in message and "micro_batch" in message, message


def test_missing_device_is_a_failed_record_with_the_reason(tmp_path):
    import torch

    device = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    spec = expand(load_study(study(tmp_path, train=f'device = "{device}"')))[0]
    record = execute(spec.to_json(), str(tmp_path / "run")).to_json()
    assert record["status"] == "failed" and record["history"] == []
    assert f"device {device!r} is not available on this machine" in record["error"]
    reason = "CUDA" if device == "cuda" else "GPU"
    assert reason in record["error"].split("machine", 1)[1], record["error"]


# ------------------------------------------------------------------------------------------ option values
@pytest.mark.parametrize("text,kwargs,value", [
    ("0.5", {}, 0.5), (None, {}, None), (" 3 ", {"integer": True}, 3), ("5%", {"scale": "percent"}, 0.05),
    ("5", {"scale": "percent"}, 0.05), ("2%", {"scale": "fraction"}, 0.02), ("0.02", {"scale": "fraction"}, 0.02),
])
def test_option_value_parses_what_it_is_given(text, kwargs, value):
    check = integer(1) if kwargs.get("integer") else number(0)
    assert option_value("--x", text, check, **kwargs) == value


@pytest.mark.parametrize("text,kwargs,message", [
    ("abc", {}, "--min-effect must be a non-negative number in metric units, got 'abc'"),
    ("-1", {}, "--min-effect must be a non-negative number in metric units, got '-1'"),
    ("inf", {}, "--min-effect must be a non-negative number in metric units, got 'inf'"),
    ("2%", {}, "--min-effect must be a non-negative number in metric units, got '2%'"),  # no % for a plain number
])
def test_option_value_names_the_option_and_what_was_typed(text, kwargs, message):
    with pytest.raises(ConfigError) as caught:
        option_value("--min-effect", text, MIN_EFFECT, **kwargs)
    assert str(caught.value) == message and caught.value.fields == ("--min-effect",)


def test_min_effect_is_judged_alike_everywhere():
    """The study file, `run --until-decided`, `reports build` and `effects` share one check."""
    from ablations.stats import effects

    for bad in (-0.1, float("nan"), float("inf"), True, "small"):
        with pytest.raises(ConfigError, match="must be a non-negative number in metric units"):
            MIN_EFFECT("min_effect", bad)
    with pytest.raises(ConfigError, match="min_effect must be a non-negative number in metric units, got -0.1"):
        effects(pd.DataFrame({"study": ["s"], "variant": ["baseline"], "status": ["ok"], "m": [1.0]}), "m",
                min_effect=-0.1)
