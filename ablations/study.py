"""Study files: parsing, validation and expansion into runs.

    [study]
    name = "dropout"
    design = "one_at_a_time"      # or "full"
    seeds = [0, 1, 2]
    metric = "test_top1_error"    # lower is better unless maximize = true
    track = "mlflow:sqlite:///mlflow.db"   # optional: live tracking (a list for several), as `run --track`
    min_effect = 0.025            # optional: smallest difference that matters (decisions, seeds needed)
    statistic = "trained"         # optional: the decision statistic (ablations.stats.robust.LABELS)

    [base.model]                  # any VGGConfig field
    arch = "A"
    [base.data]                   # any DataConfig field (dataset, data_root, augment, ...)
    dataset = "digits"
    [base.train]                  # any TrainConfig field
    epochs = 15

    [factors.dropout]
    baseline = "on"               # optional: defaults to the first level
    levels.on = { "model.dropout" = 0.5 }
    levels.off = { "model.dropout" = 0.0 }

    [factors.test]                # the test protocol (vggcore.evaluate.protocols): the same weights, scored another way
    levels.own = {}               # the training's own test score (a centre crop at Q = S)
    levels.dense = { "eval.protocol" = "dense" }
    levels.multiscale = { "eval.protocol" = "dense", "eval.scales" = [224, 256, 288] }

Every run gets a stable id: a hash of its resolved configuration (seed included), so the same run has the same
id in every expansion, on every machine. The `eval` section (`[base.eval]`, "eval.FIELD" in levels: any
`vggcore.evaluate.protocols.Protocol` field; numeric scales are given for the paper's 224 px training crop and scaled to the
run's size) is no part of the training: runs that differ in it alone share one training (`RunSpec.train_id`, the
hash without it, names their folder) and each gets its own record, scored from those weights. A run without an
eval section is scored as `vggcore train` scores it, and keeps the id it had before eval sections existed.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vggcore.config import IN_MEMORY, TRAINING, DataConfig, RunConfig, TrainConfig, VGGConfig, config_id
from vggcore.errors import UserError
from vggcore.results import METRICS
from vggcore.evaluate.protocols import PAPER_CROP, Protocol, resolve as resolve_protocol
from vggcore.validation import MIN_EFFECT, SEED_MAX, ConfigError, check_field, optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SECTIONS = {"model": VGGConfig, "data": DataConfig, "train": TrainConfig, "eval": Protocol}
STUDY_KEYS = {"name", "design", "seeds", "metric", "maximize", "description", "num_cpus", "num_gpus",
              "min_effect", "max_seeds", "track", "statistic"}
DESIGNS = ("one_at_a_time", "full")
FACTOR_KEYS = {"baseline", "levels", "description"}


class StudyError(UserError, ValueError):
    """A study file that cannot be run as written."""


@dataclass(frozen=True)
class Factor:
    name: str
    levels: dict[str, dict[str, Any]]   # level name -> {"section.field": value}, in file order
    baseline: str


@dataclass(frozen=True)
class Study:
    name: str
    design: str
    seeds: tuple[int, ...]
    metric: str
    maximize: bool
    base: dict[str, dict[str, Any]]     # section -> field overrides of the dataclass defaults
    factors: tuple[Factor, ...]
    num_cpus: float = 1.0               # per run, for the Ray executor
    num_gpus: float = 0.0
    description: str = ""
    source: str = ""                    # the file it came from
    min_effect: float | None = None     # smallest difference that matters, metric units (decisions, power)
    max_seeds: int | None = None        # seeds per variant --until-decided may reach (default 10)
    track: tuple[str, ...] = ()         # live tracking targets, mlflow:URI or tensorboard:LOGDIR (`run --track`)
    statistic: str = "trained"          # the decision statistic (ablations.stats.robust.LABELS)


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    study: str
    variant: str                        # "baseline", "dropout=off", or "a=x,b=y" in full designs
    levels: dict[str, str]              # factor -> level
    seed: int
    config: dict[str, dict[str, Any]] = field(repr=False)   # RunConfig.to_json(): model/data/train (and eval)

    @classmethod
    def of(cls, study: "Study", levels: dict[str, str], seed: int) -> "RunSpec":
        """The run of `study` at these factor levels and seed."""
        run = resolve(study, levels, seed)
        return cls(run.run_id, study.name, variant_name(study, levels), levels, seed, run.to_json())

    @property
    def run_config(self) -> RunConfig:
        return RunConfig.from_json(self.config)

    @property
    def train_id(self) -> str:
        """The id of the training this run scores: its run_id without the eval section (the same id for a run
        without one). Runs that share it share one run folder and one training."""
        return config_id({k: v for k, v in self.config.items() if k in TRAINING})

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------------ parsing
def _fields(section: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(SECTIONS[section])}


def _unknown(where: str, keys, allowed) -> None:
    extra = [k for k in keys if k not in allowed]
    if extra:
        raise StudyError(f"unknown key '{where}.{extra[0]}'; allowed keys in [{where}]: "
                         f"{', '.join(sorted(allowed))}")


def _type_ok(f: dataclasses.Field, value: Any) -> bool:
    kinds = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "tuple[int, ...]": (list, tuple)}
    allowed: tuple = ()
    for part in str(f.type).split("|"):
        allowed += kinds.get(part.strip(), ())
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, allowed)


def _check_value(path: str, section: str, name: str, value: Any) -> None:
    fields = _fields(section)
    if name not in fields:
        raise StudyError(f"'{path}' overrides {section}.{name}, which does not exist; {section} fields: "
                         f"{', '.join(fields)}")
    if not _type_ok(fields[name], value):
        raise StudyError(f"'{path}' must be of type {fields[name].type}, got {type(value).__name__} {value!r}")
    try:  # the value on its own (inf, nan, out of range); rules tying fields together wait for `resolve`
        check_field(SECTIONS[section].CHECKS, name, value)
    except ConfigError as err:
        raise StudyError(f"'{path}' = {_toml(value)}: {err}") from None


def _toml(value: Any) -> str:
    """A value as TOML writes it (inf, nan, true), so the message matches the file."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value != value:
        return "nan"
    return repr(value)


def parse_study(data: dict, source: str = "") -> Study:
    top_extra = [k for k in data if k not in ("study", "base", "factors")]
    if top_extra:
        raise StudyError(f"unknown top-level key '{top_extra[0]}'; allowed: study, base, factors")
    head = data.get("study")
    if not isinstance(head, dict):
        raise StudyError("missing [study] table (name, design, seeds, metric)")
    _unknown("study", head, STUDY_KEYS)
    name = head.get("name")
    if not isinstance(name, str) or not name:
        raise StudyError("'study.name' must be a non-empty string")
    design = head.get("design", "one_at_a_time")
    if design not in DESIGNS:
        raise StudyError(f"'study.design' must be one of {', '.join(DESIGNS)}, got {design!r}")
    seeds = head.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds):
        raise StudyError(f"'study.seeds' must be a non-empty list of integers, got {seeds!r}")
    out_of_range = [s for s in seeds if not 0 <= s <= SEED_MAX]
    if out_of_range:
        raise StudyError(f"'study.seeds' must be integers in [0, {SEED_MAX}] (the generator's range), "
                         f"got {out_of_range[0]}")
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"'study.seeds' has duplicates: {seeds}")
    metric = head.get("metric", "test_top1_error")
    if metric not in METRICS:
        raise StudyError(f"'study.metric' must be one of {', '.join(METRICS)}, got {metric!r}")
    maximize = head.get("maximize", False)
    if not isinstance(maximize, bool):
        raise StudyError(f"'study.maximize' must be true or false, got {maximize!r}")
    for key in ("num_cpus", "num_gpus"):
        if key in head and (isinstance(head[key], bool) or not isinstance(head[key], (int, float)) or head[key] < 0):
            raise StudyError(f"'study.{key}' must be a non-negative number, got {head[key]!r}")

    min_effect, max_seeds = _adaptive_fields(head, seeds)
    track = _track_field(head)
    statistic = _statistic_fields(head, metric, min_effect)

    base = data.get("base", {})
    if not isinstance(base, dict):
        raise StudyError("[base] must be a table with model, data and train tables")
    _unknown("base", base, SECTIONS)
    for section, values in base.items():
        if not isinstance(values, dict):
            raise StudyError(f"[base.{section}] must be a table")
        for key, value in values.items():
            if key not in _fields(section):
                raise StudyError(f"unknown key 'base.{section}.{key}'; allowed keys in [base.{section}]: "
                                 f"{', '.join(_fields(section))}")
            _check_value(f"base.{section}.{key}", section, key, value)

    raw_factors = data.get("factors", {})
    if not isinstance(raw_factors, dict) or not raw_factors:
        raise StudyError("a study needs at least one [factors.NAME] table")
    factors = tuple(_parse_factor(fname, fdata) for fname, fdata in raw_factors.items())
    _check_disjoint(factors)
    return Study(name=name, design=design, seeds=tuple(seeds), metric=metric, maximize=maximize,
                 base={s: dict(base.get(s, {})) for s in SECTIONS}, factors=factors,
                 num_cpus=float(head.get("num_cpus", 1)), num_gpus=float(head.get("num_gpus", 0)),
                 description=head.get("description", ""), source=source, min_effect=min_effect,
                 max_seeds=max_seeds, track=track, statistic=statistic)


def _track_field(head: dict) -> tuple[str, ...]:
    """`track`: one target or a list of them, each KIND:WHERE (`ablations.integrations.tracking.parse_target`)."""
    from .integrations.tracking import TrackingError, parse_target

    track = head.get("track", [])
    track = [track] if isinstance(track, str) else track
    if not isinstance(track, list):
        raise StudyError(f"'study.track' must be a tracking target or a list of them (mlflow:URI, "
                         f"tensorboard:LOGDIR), got {track!r}")
    try:
        return tuple(str(parse_target(t, where="'study.track'")) for t in track)
    except TrackingError as err:
        raise StudyError(str(err)) from None


def _adaptive_fields(head: dict, seeds: list[int]) -> tuple[float | None, int | None]:
    """`min_effect` (>= 0, metric units) and `max_seeds` (>= the listed seeds), both optional."""
    min_effect = head.get("min_effect")
    try:
        optional(MIN_EFFECT)("'study.min_effect'", min_effect)
    except ConfigError as err:
        raise StudyError(str(err)) from None
    max_seeds = head.get("max_seeds")
    if max_seeds is not None and (isinstance(max_seeds, bool) or not isinstance(max_seeds, int)
                                  or max_seeds < len(seeds)):
        raise StudyError(f"'study.max_seeds' must be an integer at least the {len(seeds)} listed seeds, "
                         f"got {max_seeds!r}")
    return (None if min_effect is None else float(min_effect)), max_seeds


def _statistic_fields(head: dict, metric: str, min_effect: float | None) -> str:
    """`statistic` (a name of ablations.stats.robust.LABELS), and min_effect within the metric's range."""
    from .stats.bounded import metric_bounds
    from .stats.robust import DEFAULT, LABELS

    bounds, _ = metric_bounds(metric)
    if min_effect is not None and bounds is not None and min_effect > bounds[1] - bounds[0]:
        raise StudyError(f"'study.min_effect' {min_effect:g} is larger than {metric}'s whole range "
                         f"[{bounds[0]:g}, {bounds[1]:g}]; give at most {bounds[1] - bounds[0]:g}")
    statistic = head.get("statistic", DEFAULT)
    if statistic not in LABELS:
        raise StudyError(f"'study.statistic' must be one of {', '.join(LABELS)}, got {statistic!r}")
    return statistic


def _parse_factor(fname: str, fdata: Any) -> Factor:
    where = f"factors.{fname}"
    if not isinstance(fdata, dict):
        raise StudyError(f"[{where}] must be a table with levels")
    _unknown(where, fdata, FACTOR_KEYS)
    levels = fdata.get("levels")
    if not isinstance(levels, dict) or not levels:
        raise StudyError(f"factor '{fname}' is empty: give it levels, e.g. levels.on = {{ \"model.dropout\" = 0.5 }}")
    if len(levels) < 2:
        raise StudyError(f"factor '{fname}' has a single level ({next(iter(levels))}): a factor needs two or more")
    parsed: dict[str, dict[str, Any]] = {}
    for lname, overrides in levels.items():
        if not isinstance(overrides, dict):
            raise StudyError(f"'{where}.levels.{lname}' must be a table of \"section.field\" = value")
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            if section not in SECTIONS or not name:
                raise StudyError(f"'{where}.levels.{lname}' key {key!r} must be \"model.FIELD\", \"data.FIELD\", "
                                 f"\"train.FIELD\" or \"eval.FIELD\"")
            _check_value(f"{where}.levels.{lname}.{key}", section, name, value)
        parsed[lname] = dict(overrides)
    baseline = fdata.get("baseline", next(iter(parsed)))
    if baseline not in parsed:
        raise StudyError(f"'{where}.baseline' is {baseline!r}, not one of its levels: {', '.join(parsed)}")
    return Factor(fname, parsed, baseline)


def _check_disjoint(factors: tuple[Factor, ...]) -> None:
    owner: dict[str, str] = {}
    for f in factors:
        for key in {k for lv in f.levels.values() for k in lv}:
            if key in owner:
                raise StudyError(f"factors '{owner[key]}' and '{f.name}' both set {key}; a field belongs to one factor")
            owner[key] = f.name


def load_study(path: str | Path) -> Study:
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"study file {path} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise StudyError(f"cannot read study file {path}: {err.strerror or err}") from None
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        # TOML forbids repeated keys, so a duplicate level name lands here; say so plainly.
        hint = " (a key given twice, e.g. a duplicate level name)" if "overwrite" in str(err).lower() else ""
        raise StudyError(f"{path} is not valid TOML: {err}{hint}") from None
    try:
        return parse_study(data, source=str(path))
    except StudyError as err:
        raise StudyError(f"{path}: {err}") from None


# ---------------------------------------------------------------------------------------------- expansion
def variants(study: Study) -> list[dict[str, str]]:
    """Factor -> level for each variant, baseline first."""
    baseline = {f.name: f.baseline for f in study.factors}
    if study.design == "full":
        names = [f.name for f in study.factors]
        ordered = [[f.baseline, *[lv for lv in f.levels if lv != f.baseline]] for f in study.factors]
        return [dict(zip(names, combo)) for combo in itertools.product(*ordered)]
    out = [baseline]
    for f in study.factors:
        out += [{**baseline, f.name: lv} for lv in f.levels if lv != f.baseline]
    return out


def variant_name(study: Study, levels: dict[str, str]) -> str:
    changed = [f"{f.name}={levels[f.name]}" for f in study.factors if levels[f.name] != f.baseline]
    return ",".join(changed) or "baseline"


def resolve(study: Study, levels: dict[str, str], seed: int) -> RunConfig:
    """The full configuration of one run: dataclass defaults < base < factor levels < seed."""
    sections = {s: dict(v) for s, v in study.base.items()}
    for f in study.factors:
        for key, value in f.levels[levels[f.name]].items():
            section, _, name = key.partition(".")
            sections[section][name] = value
    sections["train"]["seed"] = seed
    evaluation = sections.pop("eval", {})
    built = {}
    for section, values in sections.items():
        try:
            built[section] = SECTIONS[section](**values)
        except ConfigError as err:
            raise StudyError(_blame(study, levels, section, err)) from None
        except ValueError as err:
            raise StudyError(f"{_where(study)}variant {variant_name(study, levels)}: {err}") from None
    # a run without an eval section keeps the id it had before eval sections existed
    protocol = _evaluation(study, levels, evaluation, built["model"], built["data"]) if evaluation else None
    return RunConfig(built["model"], built["data"], built["train"], protocol)


def _evaluation(study: Study, levels: dict[str, str], values: dict, model: VGGConfig, data: DataConfig
                ) -> Protocol:
    """The eval section of one run, checked against the net it scores (scales it can take, an in-memory set)."""
    values = {"scales_for": PAPER_CROP, **values}
    try:
        protocol = Protocol(**values)
        resolve_protocol(protocol, model.image_size, model.pool_size, *data.scales(model.image_size))
    except ConfigError as err:
        raise StudyError(_blame(study, levels, "eval", err)) from None
    if data.dataset not in IN_MEMORY:
        raise StudyError(f"{_where(study)}variant {variant_name(study, levels)}: an eval section scores in-memory "
                         f"datasets only ({', '.join(IN_MEMORY)}), not {data.dataset}")
    return protocol


def _where(study: Study) -> str:
    return f"{study.source}: " if study.source else ""


def _blame(study: Study, levels: dict[str, str], section: str, err: ConfigError) -> str:
    """Name whoever set the fields of a refused combination: the variant's levels if any of them did, else
    [base.SECTION] (then every variant fails alike, and naming one would mislead)."""
    by_level = [f"factors.{f.name}.levels.{levels[f.name]} sets {key} = {_toml(value)}"
                for f in study.factors for key, value in f.levels[levels[f.name]].items()
                if key.partition(".")[0] == section and key.partition(".")[2] in err.fields]
    in_base = [f"{name} = {_toml(study.base[section][name])}" for name in err.fields if name in study.base[section]]
    base_text = f"[base.{section}] {', '.join(in_base)}" if in_base else ""
    if by_level:
        context = "; ".join(by_level + ([f"with {base_text}"] if base_text else []))
        return f"{_where(study)}variant {variant_name(study, levels)} ({context}): {err}"
    return f"{_where(study)}{base_text or f'[base.{section}]'}: {err}"


def expand(study: Study) -> list[RunSpec]:
    runs, seen = [], set()
    for levels in variants(study):
        for seed in study.seeds:
            run = RunSpec.of(study, levels, seed)
            if run.run_id in seen:  # two level combinations that resolve to the same run
                continue
            seen.add(run.run_id)
            runs.append(run)
    return runs
