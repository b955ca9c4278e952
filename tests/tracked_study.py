"""Study folders for the tracking tests: real records, built by RunRecord's constructors and appended through
Store, without training (training is not the point there), and readers of what the tracking stores hold."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

from ablations import expand, load_study
from ablations.records import RunRecord
from ablations.store import Store
from vggcore.provenance import provenance
from tiny_study import BROKEN, tiny_study
from json_records import json_records

EPOCHS = 3


def history(seed: int, variant: str, epochs: int = EPOCHS) -> list[dict]:
    base = 1 + seed / 10 + len(variant) / 100
    return [{"epoch": e, "lr": 0.01 / e, "train_loss": base / e, "train_top1_error": 0.9 / e, "epoch_seconds": 0.5,
             "val_loss": base / e + 0.1, "val_top1_error": 0.8 / e + seed / 100, "val_top5_error": 0.3 / e}
            for e in range(1, epochs + 1)]


def record_of(run, started: float, fail: bool = True) -> RunRecord:
    """ok for most runs; dropout=off seed 1 diverged in epoch 2; the data=missing level failed (unless not
    `fail`: the cause fixed and the run retried)."""
    if fail and run.levels.get("data") == "missing":
        err = FileNotFoundError(f"data root {run.config['data']['data_root']} is not a directory")
        return RunRecord.failed(run, err, started, 1)
    rows = history(run.seed, run.variant)
    result = {"status": "ok", "history": rows, "provenance": provenance("cpu"), "seed_scheme": "hash-v1",
              "final": {"test_top1_error": rows[-1]["val_top1_error"] + 0.01, "test_top5_error": 0.1,
                        "test_loss": 0.5 + run.seed / 10, "val_top1_error": rows[-1]["val_top1_error"],
                        "train_seconds": 1.5, "epochs": EPOCHS}}
    if run.variant == "dropout=off" and run.seed == 1:
        result.update(status="diverged", history=rows[:1], final=None, diverged_epoch=2,
                      error="non-finite training loss in epoch 2")
    return RunRecord.finished(run, result, started, 1).with_executor("local")


def write_study(tmp_path: Path, seeds: str = "[0]", extra: str = "") -> Path:
    """tiny.toml: the tiny study with a level that fails (data=missing); 3 runs per seed."""
    toml = tmp_path / "tiny.toml"
    toml.write_text(tiny_study(seeds=seeds, epochs=EPOCHS, extra=BROKEN).replace(
        'metric = "test_top1_error"', 'metric = "test_top1_error"' + extra))
    return toml


def make_folder(tmp_path: Path, seeds: str = "[0]") -> Store:
    """A folder of the tiny study, every run recorded (seeds may grow between calls)."""
    study = load_study(write_study(tmp_path, seeds))
    store = Store(tmp_path / "out")
    runs = expand(study)
    with store.lock():
        store.check_manifest(study, runs)
        known = store.read().records
        for number, run in enumerate(runs):
            if run.run_id not in known:
                store.append(record_of(run, time.time() - 100 + number))
    return store


def records(store: Store) -> dict[str, dict]:
    return json_records(store.results_path)


def pristine_mlflow_db(folder: Path) -> Path:
    """An MLflow SQLite store with its tables made (MLflow's migrations take seconds: done once a session)."""
    from mlflow.tracking import MlflowClient

    path = folder / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def fresh_db(pristine: Path, tmp_path: Path) -> str:
    path = tmp_path / "mlflow.db"
    shutil.copy(pristine, path)
    return f"sqlite:///{path}"


# -------------------------------------------------------------------------------------------- readers
def mlflow_runs(uri: str, study: str = "tiny") -> list[dict]:
    """Every active MLflow run of the study's experiment: name, status, tags, params, metric histories."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return []
    out = []
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        metrics = {key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
                   for key in run.data.metrics}
        out.append({"name": run.info.run_name, "status": run.info.status, "tags": run.data.tags,
                    "params": run.data.params, "metrics": metrics})
    return out


def expected_metrics(record: dict) -> dict[str, list[tuple[int, float]]]:
    """What the issue asks for: every per-epoch value at its epoch, the final metrics at the last epoch."""
    out: dict[str, list] = {}
    for row in record["history"]:
        for key, value in row.items():
            if key != "epoch":
                out.setdefault(key, []).append((row["epoch"], value))
    last = len(record["history"])
    for key, value in (record.get("final") or {}).items():
        if value is not None:
            out[f"final/{key}"] = [(last, value)]
    out["final/run_seconds"] = [(last, record["timing"]["seconds"])]
    return out


def expected_params(record: dict) -> dict[str, str]:
    return {f"{section}.{key}": value if isinstance(value, str) else json.dumps(value)
            for section, fields in record["config"].items() for key, value in fields.items()}


def same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def tensorboard_runs(logdir: Path) -> dict[str, dict]:
    """Every run folder under `logdir` read back through TensorBoard's own EventAccumulator: run name (its path)
    -> scalars, hparams session start and end, text tags."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    out = {}
    for events in sorted(logdir.rglob("events.out.tfevents.*")):
        folder = events.parent
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        try:
            content = acc.PluginTagToContent("hparams")
        except KeyError:  # no HParams data in this folder
            content = {}
        entry = {"scalars": {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]},
                 "tensors": acc.Tags()["tensors"]}
        if metadata.SESSION_START_INFO_TAG in content:
            start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
            entry["hparams"] = {k: (v.string_value or v.number_value) if v.WhichOneof("kind") != "number_value"
                                else v.number_value for k, v in start.hparams.items()}
            end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
            entry["end_status"] = end.status
        if metadata.EXPERIMENT_TAG in content:
            entry["experiment"] = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
        out[folder.relative_to(logdir).as_posix()] = entry
    return out
