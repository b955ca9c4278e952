"""TensorBoard as a tracking store of `ablations.integrations.tracking` (the `vggbench[tensorboard]` extra).

Written with TensorBoard's own event writer and summary protos (no TensorFlow):

    LOGDIR/STUDY/                          the HParams experiment: factors, seed, status; final/METRIC
    LOGDIR/STUDY/VARIANT/seedN-RUNID/      one run: scalars at step = epoch, final/*, the HParams session
                                           (its hyperparameters and status), text summaries config and error;
                                           vggbench-run.json, written last, says which record it holds

A run folder without vggbench-run.json was cut off mid-write and is written again by the next export. Open with

    tensorboard --logdir LOGDIR            # scalars; the HPARAMS tab has one row per run
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from vggcore.errors import MissingPackage

from .tracking import FINAL, StudyInfo, Target, TrackedRun, TrackingError

MISSING = "TensorBoard tracking needs TensorBoard: pip install 'vggbench[tensorboard]'"
MARKER = "vggbench-run.json"
EXPERIMENT = ".vggbench-experiment.json"   # in LOGDIR/STUDY: the experiment written there, and its event file
RUN_DIR = re.compile(r"^seed-?\d+-([0-9a-f]{12})$")


class TensorBoardBackend:
    failures = (OSError,)

    def __init__(self, target: Target, info: StudyInfo) -> None:
        try:
            from tensorboard.plugins.hparams import summary_v2  # noqa: F401 - the package is there and loads
            from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: F401
        except ImportError:
            raise MissingPackage(MISSING) from None
        self.target, self.info = target, info
        self.root = Path(target.where)
        self.study_dir = self.root / _safe(info.name)
        _probe(self.root)  # nothing is created until the first run is written
        self._experiment_done = False

    # ------------------------------------------------------------------------------------------ reading
    def _markers(self, run_ids: set[str] | None = None) -> dict[Path, dict | None]:
        """Each run folder of this study in the log folder (of `run_ids` only, if given) -> its marker (None:
        half-written)."""
        out: dict[Path, dict | None] = {}
        if not self.study_dir.is_dir():
            return out
        pattern = "*/*" if run_ids is None or len(run_ids) != 1 else f"*/seed*-{next(iter(run_ids))}"
        for folder in self.study_dir.glob(pattern):
            match = RUN_DIR.match(folder.name)
            if not (folder.is_dir() and match) or (run_ids is not None and match.group(1) not in run_ids):
                continue
            try:
                marker = json.loads((folder / MARKER).read_text())
                out[folder] = marker if isinstance(marker, dict) else None
            except (OSError, ValueError):
                out[folder] = None
        return out

    def tracked(self, run_ids: set[str] | None = None) -> dict[str, str]:
        out: dict[str, str] = {}
        for folder, marker in self._markers(run_ids).items():
            if marker is None:
                out.setdefault(RUN_DIR.match(folder.name).group(1), "")
            elif marker.get("folder") == self.info.folder:
                out[str(marker.get("run_id"))] = str(marker.get("digest", ""))
        return out

    def check(self, runs: Sequence[TrackedRun]) -> None:
        markers = self._markers()
        for run in runs:
            marker = markers.get(self.run_dir(run))
            if marker is not None and marker.get("folder") != self.info.folder:
                raise TrackingError(f"{self.run_dir(run)} holds run {run.run_id} exported from another study "
                                    f"folder ({marker.get('folder')}); give this folder another --tensorboard log "
                                    "folder, or remove that run folder")

    # ------------------------------------------------------------------------------------------ writing
    def run_dir(self, run: TrackedRun) -> Path:
        return self.study_dir / _safe(run.variant) / f"seed{run.seed}-{run.run_id}"

    def write(self, run: TrackedRun, replace: bool) -> None:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.hparams import summary_v2
        from tensorboard.plugins.text import summary_v2 as text

        self._experiment()
        folder = self.run_dir(run)
        if folder.exists():  # this folder's older or half-written copy (check() refused anyone else's)
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        events = [(run.started, 0, summary_v2.hparams_pb(run.hparams, trial_id=_relative(folder, self.root),
                                                         start_time_secs=run.started)),
                  (run.started, 0, text.text_pb("config", "```\n" + json.dumps(run.config, indent=2) + "\n```"))]
        if "error" in run.tags:
            events.append((run.ended, 0, text.text_pb("error", run.tags["error"])))
        events += [(when, step, _scalar(key, value)) for key, value, step, when in run.metrics]
        last = max((step for _, _, step, _ in run.metrics), default=0)
        events.append((run.ended, last, _session_end(run)))
        writer = _writer(folder)
        try:
            for when, step, summary in events:
                writer.add_event(event_pb2.Event(wall_time=when, step=step, summary=summary))
        finally:
            writer.close()  # flushes
        _save_json(folder / MARKER, {"run_id": run.run_id, "digest": run.digest, "folder": self.info.folder,
                                     "name": run.name})

    def _experiment(self) -> None:
        """The HParams experiment of the study: written once, again only when a factor gains levels."""
        if self._experiment_done:
            return
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.hparams import summary_v2

        path = self.study_dir / EXPERIMENT
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        old_factors = old.get("factors") if isinstance(old.get("factors"), dict) else {}
        factors = {name: list(levels) for name, levels in old_factors.items()}
        for name, levels in self.info.factors.items():
            factors[name] = [*factors.get(name, []), *[lv for lv in levels if lv not in factors.get(name, [])]]
        wanted = {"factors": factors, "metric": FINAL + self.info.metric}
        if {k: old.get(k) for k in wanted} != wanted:
            self.study_dir.mkdir(parents=True, exist_ok=True)
            for name in old.get("files", []) if isinstance(old.get("files"), list) else []:
                (self.study_dir / Path(str(name)).name).unlink(missing_ok=True)
            hparams = [summary_v2.HParam(name, summary_v2.Discrete(levels)) for name, levels in factors.items()]
            hparams += [summary_v2.HParam("seed"), summary_v2.HParam("status", summary_v2.Discrete(list(self.info.statuses)))]
            metric = summary_v2.Metric(FINAL + self.info.metric, display_name=self.info.metric)
            before = set(os.listdir(self.study_dir))
            writer = _writer(self.study_dir)
            try:
                writer.add_event(event_pb2.Event(summary=summary_v2.hparams_config_pb(hparams, [metric])))
            finally:
                writer.close()
            files = sorted(set(os.listdir(self.study_dir)) - before)
            _save_json(path, {**wanted, "files": files})
        self._experiment_done = True

    def close(self) -> None:
        pass


def _writer(folder: Path):
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    return EventFileWriter(str(folder))


def _scalar(tag: str, value: float):
    from tensorboard.compat.proto import summary_pb2

    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])


def _session_end(run: TrackedRun):
    """The HParams session's end: SUCCESS for a result (ok or diverged), FAILURE for a failed run."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionEndInfo(
        status=api_pb2.STATUS_FAILURE if run.status == "failed" else api_pb2.STATUS_SUCCESS,
        end_time_secs=run.ended)
    content = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(session_end_info=info))
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag=metadata.SESSION_END_INFO_TAG, metadata=content, tensor=metadata.NULL_TENSOR)])


def _safe(name: str) -> str:
    """A folder name for a study or variant: a level called "a/b" must not make a folder level of its own."""
    return re.sub(r"[/\\\0]", "_", name) or "_"


def _relative(folder: Path, root: Path) -> str:
    return folder.relative_to(root).as_posix()


def _save_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _probe(root: Path) -> None:
    """The log folder, or the nearest folder above it that exists, must be a folder this process can write."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise TrackingError(f"TensorBoard log folder {root}: {existing} is a file, not a folder; give a folder "
                            "path to --tensorboard or tensorboard:LOGDIR")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise TrackingError(f"cannot write TensorBoard log folder {root} ({existing}: {err.strerror or err}); "
                            "give a folder you can write") from None
