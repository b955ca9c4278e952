"""MLflow as a tracking store of `ablations.integrations.tracking` (the `vggbench[mlflow]` extra).

One MLflow experiment per study, named after it; one MLflow run per study run, named STUDY/VARIANT/seedN, status
FINISHED (ok, diverged) or FAILED. The digest tag is set last, so a run a kill cut off mid-write is told apart
(it has none) and written again by the next export. Open the runs with

    mlflow ui --backend-store-uri sqlite:///mlflow.db       # the URI given to --mlflow or --track mlflow:
"""

from __future__ import annotations

import logging
import os
import re
from typing import Iterator, Sequence

from vggcore.errors import MissingPackage

from .tracking import (DIGEST_TAG, FOLDER_TAG, StudyInfo, Target, TrackedRun, TrackingError, check_reachable,
                       first_line)

MISSING = "MLflow tracking needs MLflow: pip install 'vggbench[mlflow]'"
PER_BATCH = {"params": 100, "metrics": 1000}   # MLflow's limits per log_batch request
MAX_PARAM, MAX_TAG = 6000, 8000                # MLflow's limits on a param's and a tag's value
NOTE = "mlflow.note.content"                   # the run's description in the UI: the error of a failed run
# A server that stops answering mid-study must cost one short wait, not MLflow's default minutes of retries;
# values set in the environment win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
FIX = "give a URI MLflow can open and write (sqlite:///mlflow.db, or http://HOST:PORT of a running mlflow server)"


class MLflowBackend:
    def __init__(self, target: Target, info: StudyInfo) -> None:
        try:
            import requests
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise MissingPackage(MISSING) from None
        self.target, self.info = target, info
        self.failures = (MlflowException, requests.RequestException, OSError)
        uri = target.where
        if uri.startswith(("http://", "https://")):
            check_reachable(uri, "MLflow tracking URI", "start the server (mlflow server --host 127.0.0.1 --port "
                                                        "5000) or fix the URI")
            for key, value in HTTP_DEFAULTS.items():
                os.environ.setdefault(key, value)
        for name in ("mlflow", "alembic"):  # a new SQLite store logs its migrations at INFO
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            self.client = MlflowClient(tracking_uri=uri)
            experiment = self.client.get_experiment_by_name(info.name)
            if experiment is None:  # writing it proves the store takes writes
                self.experiment_id = self.client.create_experiment(info.name)
            elif experiment.lifecycle_stage != "active":
                raise TrackingError(f"MLflow experiment {info.name!r} at {uri} is deleted; restore it (mlflow "
                                    f"experiments restore --experiment-id {experiment.experiment_id}) or remove it "
                                    "for good (mlflow gc), then run the same command again")
            else:
                self.experiment_id = experiment.experiment_id
        except self.failures as err:
            raise TrackingError(f"cannot use MLflow tracking URI {uri!r}: {type(err).__name__}: "
                                f"{first_line(err)}; {FIX}") from None
        self._copies: dict[str, list[str]] = {}

    def _runs(self, run_ids: set[str] | None) -> Iterator:
        # run ids are hex digests: safe to quote in a filter
        where = f"tags.run_id = '{next(iter(run_ids))}'" if run_ids and len(run_ids) == 1 else ""
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string=where, max_results=1000,
                                           page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def tracked(self, run_ids: set[str] | None = None) -> dict[str, str]:
        out: dict[str, str] = {}
        self._copies = {}
        for run in self._runs(run_ids):
            tags = run.data.tags
            rid = tags.get("run_id")
            if not rid or tags.get(FOLDER_TAG) != self.info.folder or (run_ids is not None and rid not in run_ids):
                continue  # another folder's runs of a study of the same name stay as they are
            self._copies.setdefault(rid, []).append(run.info.run_id)
            if not out.get(rid):
                out[rid] = tags.get(DIGEST_TAG, "")
        return out

    def check(self, runs: Sequence[TrackedRun]) -> None:
        pass  # runs are matched within their folder: nothing another folder wrote is in the way

    def write(self, run: TrackedRun, replace: bool) -> None:
        from mlflow.entities import Metric, Param

        if replace:
            for old in self._copies.pop(run.run_id, []):
                self.client.delete_run(old)
        tags = {_key(k): v[:MAX_TAG] for k, v in run.tags.items()}
        if run.status != "ok" and "error" in run.tags:
            tags[NOTE] = run.tags["error"][:MAX_TAG]
        made = self.client.create_run(self.experiment_id, start_time=_ms(run.started), tags=tags, run_name=run.name)
        mlflow_id = made.info.run_id
        params = [Param(_key(k), v[:MAX_PARAM]) for k, v in run.params.items()]
        metrics = [Metric(_key(k), value, _ms(when), step) for k, value, step, when in run.metrics]
        for chunk in _chunks(params, PER_BATCH["params"]):
            self.client.log_batch(mlflow_id, params=chunk)
        for chunk in _chunks(metrics, PER_BATCH["metrics"]):
            self.client.log_batch(mlflow_id, metrics=chunk)
        self.client.set_tag(mlflow_id, DIGEST_TAG, run.digest)  # last: the run is whole
        self.client.set_terminated(mlflow_id, status="FAILED" if run.status == "failed" else "FINISHED",
                                   end_time=_ms(run.ended))

    def close(self) -> None:
        pass


def _key(name: str) -> str:
    """A name MLflow accepts as a key (letters, digits, _ - . / and spaces): a factor may be called anything."""
    return re.sub(r"[^\w\-./ ]", "_", name)


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
