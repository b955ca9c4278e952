"""The time-to-accuracy benchmark (bench/tta.py, bench/tta_stats.py, bench/loop_cost.py): the clock's rules on
scripted runs and a stub clock, the statistics on known inputs and by simulation, the options' errors, and that a
run trains exactly as `vggcore.train.loop.train` does."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from bench import tta, tta_stats
from bench.cases import OptionError
from bench.loop_cost import epoch_parts, step_parts
from vggcore.intervals import median_rank_interval
from vggcore.train.epoch import Diverged
from vggcore.train.loop import train


class Clock:
    """A stub clock: reads `now`, which the scripted trial advances."""

    def __init__(self) -> None:
        self.now = 100.0   # not zero, so a time measured from the wrong origin shows

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A trial that takes `epoch_s[e]` seconds per epoch (training and its evaluation) and reports `accuracies[e]`;
    loading its data takes `load_s`; the test evaluation takes 1000 s, which must never reach a time."""

    def __init__(self, clock, load_s, epoch_s, accuracies, test=0.99, diverge_at=None):
        self.clock, self.epoch_s, self.accuracies, self.test = clock, epoch_s, accuracies, test
        self.diverge_at, self.asked = diverge_at, []
        clock.now += load_s

    def epoch(self, epoch):
        self.asked.append(epoch)
        self.clock.now += self.epoch_s[epoch]
        if epoch == self.diverge_at:
            raise Diverged("scripted")
        return {"val_accuracy": self.accuracies[epoch], "train_images": 64, "eval_images": 10, "val_loss": 1.0}

    def test_accuracy(self):
        self.clock.now += 1000.0
        return self.test


def run_script(load_s=0.5, epoch_s=(1.0, 2.0, 3.0, 4.0), accuracies=(0.5, 0.96, 0.975, 0.99), target=0.97,
               max_epochs=4, **kw):
    clock, trials = Clock(), []

    def open_trial(seed):
        trials.append(Scripted(clock, load_s, epoch_s, accuracies, **kw))
        return trials[-1]

    return tta.timed_run(open_trial, 7, target, max_epochs, clock=clock), trials


def test_clock_runs_from_the_data_load_to_the_first_validation_at_the_target():
    run, (trial,) = run_script()
    # the load, epochs 1-3 with their evaluations; not epoch 4 (never run) and not the test evaluation
    assert run["status"] == "reached" and run["seconds"] == pytest.approx(0.5 + 1 + 2 + 3)
    assert run["epochs"] == 3 and trial.asked == [0, 1, 2] and run["seed"] == 7
    assert [p["seconds"] for p in run["curve"]] == pytest.approx([1.5, 3.5, 6.5])
    assert [p["val_accuracy"] for p in run["curve"]] == [0.5, 0.96, 0.975]
    assert run["test_accuracy"] == 0.99 and run["confirmed"] is True
    assert run["train_images"] == 3 * 64 and run["eval_images"] == 3 * 10


def test_a_target_met_on_validation_but_not_on_test_is_reached_and_unconfirmed():
    run, _ = run_script(test=0.95)
    assert run["status"] == "reached" and run["confirmed"] is False and run["test_accuracy"] == 0.95


def test_a_run_that_ends_its_epochs_below_the_target_is_not_reached():
    run, (trial,) = run_script(accuracies=(0.5, 0.6, 0.7, 0.8, 0.99), epoch_s=(1, 1, 1, 1, 1), max_epochs=4)
    assert run["status"] == "not reached" and run["seconds"] is None and run["epochs"] is None
    assert trial.asked == [0, 1, 2, 3]            # the cap: epoch 5 (which would reach it) never runs
    assert run["elapsed"] == pytest.approx(4.5) and run["epochs_run"] == 4 and run["confirmed"] is None


def test_a_diverged_run_is_not_converged_and_not_tested():
    run, _ = run_script(diverge_at=1)
    assert run["status"] == "diverged" and run["seconds"] is None and run["test_accuracy"] is None
    assert run["elapsed"] == pytest.approx(0.5 + 1 + 2) and run["confirmed"] is None


def test_the_target_is_met_within_float_rounding_only():
    assert tta.reached(1 - 8 / 270, 0.97) and tta.reached(1 - 0.03, 0.97)   # 0.9703 and 0.97 itself
    assert not tta.reached(0.9699, 0.97)


def test_warm_up_is_one_untimed_run_on_a_seed_of_its_own():
    clock, seen = Clock(), []

    def open_trial(seed):
        seen.append(seed)
        return Scripted(clock, 0.5, (1.0, 1.0), (0.1, 0.1))

    tta.warm_up(open_trial)
    assert seen == [tta.WARMUP["seed"]] and tta.WARMUP["timed"] is False and tta.WARMUP["seed"] >= 1000


# ------------------------------------------------------------------------------------------ the statistics
INF = math.inf


def test_olympic_mean_drops_the_fastest_and_slowest():
    assert tta_stats.olympic_mean([5.0, 1.0, 3.0, 2.0, 4.0]) == pytest.approx(3.0)
    assert tta_stats.olympic_mean([1.0, 2.0, 3.0, 10.0, INF]) == pytest.approx(5.0)   # one miss: dropped
    assert tta_stats.olympic_mean([1.0, 2.0, 3.0, INF, INF]) is None                  # two: undefined
    assert tta_stats.olympic_mean([1.0, 2.0]) is None


def test_median_and_its_interval_on_known_inputs():
    assert tta_stats.median([3.0, 1.0, 2.0, 5.0, INF]) == 3.0
    assert tta_stats.median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert tta_stats.median([1.0, INF, INF]) is None
    assert tta_stats.interval([3.0, 1.0, 2.0, 5.0, 4.0]) == (1.0, 5.0, 0.9375)
    assert tta_stats.interval([3.0, 1.0, 2.0, 5.0, INF]) == (1.0, None, 0.9375)        # open upper end
    assert tta_stats.interval(list(map(float, range(10)))) == (1.0, 8.0, pytest.approx(1 - 22 / 1024))


def test_validity_follows_mlperf():
    assert tta_stats.validity(5, 0) == (True, "") and tta_stats.validity(5, 1) == (True, "")
    ok, why = tta_stats.validity(5, 2)
    assert not ok and why == "2 of 5 runs did not reach the target (MLPerf allows one)"
    assert not tta_stats.validity(2, 0)[0]


def runs_of(statuses, seconds):
    return [{"status": s, "seconds": t if s == "reached" else None, "elapsed": t, "epochs": 3 if s == "reached"
             else None, "test_accuracy": 0.98, "confirmed": True, "train_images": 100 * (i + 1), "eval_images": 5}
            for i, (s, t) in enumerate(zip(statuses, seconds))]


def test_summary_counts_misses_and_applies_the_rule():
    runs = runs_of(["reached", "not reached", "reached", "reached", "diverged"], [2.0, 9.0, 1.0, 3.0, 0.5])
    s = tta_stats.summarize(runs)
    assert s["not_converged"] == 2 and s["valid"] is False and s["olympic_mean_s"] is None
    assert s["median_s"] == 3.0 and s["tta_high_s"] is None and s["tta_seconds"] == [2.0, None, 1.0, 3.0, None]
    assert s["confirmed_runs"] == 3 and s["median_epochs"] == 3 and s["train_images_to_target"] == 300
    # pytest-benchmark's rounds: a miss at the time it ran to its cap (a diverged run at the time it stopped)
    assert tta_stats.round_times(runs) == [2.0, 9.0, 1.0, 3.0, 0.5]
    assert s["median_test_accuracy"] == 0.98   # of the four runs that were tested (the diverged one was not)
    tested = runs_of(["reached"] * 3 + ["diverged"], [1.0, 2.0, 3.0, 4.0])
    for r, acc in zip(tested, [0.97, 0.99, 0.975, None]):
        r["test_accuracy"] = acc
    assert tta_stats.summarize(tested)["median_test_accuracy"] == 0.975
    one_miss = tta_stats.summarize(runs_of(["reached"] * 4 + ["not reached"], [2.0, 1.0, 3.0, 4.0, 9.0]))
    assert one_miss["valid"] is True and one_miss["olympic_mean_s"] == pytest.approx(3.0)


# Times to a target as they come: whole epochs (lumps) with a little machine noise, skewed, or two lumps with the
# median at an edge; `fail` of the runs never converge (infinite).
def lumpy(rng, size, fail=0.0):
    t = 0.15 + rng.choice([4.0, 5.0, 6.0], p=[0.2, 0.5, 0.3], size=size) * 0.4 * (1 + 0.03 * rng.standard_normal(size))
    return np.where(rng.random(size) < fail, np.inf, t)


def lognormal(rng, size, fail=0.0):
    return np.where(rng.random(size) < fail, np.inf, 2.0 * np.exp(0.2 * rng.standard_normal(size)))


def two_lumps(rng, size, fail=0.0):
    return 0.15 + rng.choice([2.0, 3.0], p=[0.6, 0.4], size=size) * 0.5 * (1 + 0.02 * rng.standard_normal(size))


@pytest.mark.parametrize("draw,fail", [(lumpy, 0.0), (lumpy, 0.1), (lognormal, 0.0), (lognormal, 0.2),
                                       (two_lumps, 0.0)])
@pytest.mark.parametrize("n", [5, 6, 10])
def test_the_median_interval_covers_at_its_stated_level(draw, fail, n):
    rng = np.random.default_rng(n * 100 + int(fail * 10))
    truth = np.median(draw(rng, 1_000_000, fail))
    samples = draw(rng, (4000, n), fail)
    covered = []
    for row in samples:
        low, high, level = tta_stats.interval(row.tolist())
        covered.append((low is not None and low <= truth) and (high is None or truth <= high))
    rate, se = np.mean(covered), math.sqrt(level * (1 - level) / len(samples))
    assert level == median_rank_interval(n)[2]
    assert rate >= level - 4 * se, (rate, level)   # at least its level (ties only add coverage)
    assert rate <= level + 0.02 or draw is two_lumps


def test_a_t_interval_on_the_olympic_mean_would_not_hold_its_level():
    """Why the interval is the median's: the 20%-trimmed-mean t interval (Tukey-McLaughlin) at 5 seeds covers
    far below 95% on lumpy times, and is undefined once a run does not converge."""
    rng = np.random.default_rng(1)
    big = np.sort(two_lumps(rng, 1_000_000))
    truth = big[200_000:-200_000].mean()
    x = np.sort(two_lumps(rng, (20000, 5)), axis=1)
    trimmed = x[:, 1:4].mean(axis=1)
    w = np.concatenate([x[:, [1]], x[:, 1:4], x[:, [3]]], axis=1)   # winsorized
    half = sps.t.ppf(0.975, 2) * w.std(axis=1, ddof=1) / (0.6 * math.sqrt(5))
    assert np.mean((trimmed - half <= truth) & (truth <= trimmed + half)) < 0.8


# ------------------------------------------------------------------------------------------------ options
def options(**given):
    return {k.replace("-", "_"): v for k, v in given.items()}


def test_defaults_are_the_digits_recipe_at_97_percent():
    (case,) = tta.expand_tta(options(devices="cpu"), [False])
    recipe = tta.RECIPES["digits"]
    assert (case.arch, case.dataset, case.dtype, case.image_size, case.target, case.seeds) == \
        ("A_bn", "digits", "fp32", 32, 0.97, 5)
    assert (case.max_epochs, case.lr, case.batch_size, case.width) == (recipe.epochs, recipe.lr, recipe.batch_size,
                                                                      recipe.width)
    both = tta.expand_tta(options(devices="cpu", dtypes="fp32,bf16", target="0.9", tta_recipe="lr=0.2,augment=none"),
                          [False, True])
    assert len(both) == 4 and {c.target for c in both} == {0.9} and {c.lr for c in both} == {0.2}
    assert both[0].id == "A_bn-digits-cpu-fp32-32px-w0.25-b64-to90"


@pytest.mark.parametrize("given,match", [
    (dict(target="101%"), r"--vgg-target: '101%' is not an accuracy above chance \(10% on digits.*at most 100%"),
    (dict(target="97"), r"--vgg-target: '97' is not an accuracy"),
    (dict(target="5%"), r"--vgg-target: '5%' is not an accuracy above chance \(10% on digits"),
    (dict(target="0.1"), r"--vgg-target: '0.1' is not"),                     # chance itself is no target
    (dict(target="abc"), r"--vgg-target: 'abc'"),
    (dict(tta_seeds="0"), r"--vgg-tta-seeds: '0' is not allowed; the number of timed seeds is a whole number of at "
                          r"least 1"),
    (dict(tta_epochs="0"), r"--vgg-tta-epochs: '0' is not allowed; the epoch cap is a whole number of at least 1"),
    (dict(dataset="cifar10"), r"--vgg-dataset cifar10: needs --vgg-data-root DIR"),
    (dict(dataset="imagenet"), r"--vgg-dataset: 'imagenet' is not allowed; allowed: digits, cifar10, cifar100"),
    (dict(dataset="cifar100", target="0.5%", data_root="."), r"chance \(1% on cifar100"),
    (dict(dtypes="fp16"), r"--vgg-dtypes: 'fp16' is not a training dtype"),
    (dict(tta_recipe="lr"), r"--vgg-tta-recipe: 'lr' is not KEY=VALUE"),
    (dict(tta_recipe="lr=fast"), r"--vgg-tta-recipe: lr='fast' is not a number"),
    (dict(tta_recipe="lr=-1"), r"--vgg-tta-recipe: lr must be a finite number > 0"),
    (dict(tta_recipe="augment=mixup"), r"--vgg-tta-recipe: augment='mixup'; allowed: none"),
    (dict(data_root="/no/such/dir"), r"--vgg-data-root: '/no/such/dir' is not a directory"),
])
def test_bad_options_are_one_line_naming_the_option(given, match):
    with pytest.raises(OptionError, match=match) as err:
        tta.expand_tta(options(devices="cpu", **given), [False])
    assert "\n" not in str(err.value)


def test_a_dataset_without_a_default_target_asks_for_one(tmp_path):
    with pytest.raises(OptionError, match="--vgg-target: cifar100 has no default target"):
        tta.expand_tta(options(devices="cpu", dataset="cifar100", data_root=str(tmp_path)), [False])


# ---------------------------------------------------------------------------------- runs train as train() does
TINY = dict(devices="cpu", width="0.0625", tta_recipe="init=xavier,dropout=0,augment=none,lr=0.05,schedule=constant",
            tta_epochs="2", target="1.0")


def test_a_timed_run_is_trains_own_run_stopped_at_the_target(one_thread):
    (case,) = tta.expand_tta(options(**TINY), [False])
    run = tta.timed_run(lambda seed: tta.Run(case, seed), 3, case.target, case.max_epochs)
    reference = train(*case.configs(3), progress=False)
    assert run["status"] == "not reached" and run["epochs_run"] == 2       # 100% is not reached in 2 epochs
    assert [p["val_loss"] for p in run["curve"]] == [h["val_loss"] for h in reference["history"]]
    assert [p["train_loss"] for p in run["curve"]] == [h["train_loss"] for h in reference["history"]]
    assert run["test_accuracy"] == 1 - reference["final"]["test_top1_error"]
    assert run["train_images"] == 2 * 1257 and run["eval_images"] == 2 * 270   # every digit (the last batch is 41)


# ------------------------------------------------------------------------------------------- the loop's cost
def test_epoch_parts_split_the_clock():
    runs = [{"elapsed": 10.0, "curve": [{"epoch_seconds": 3.0, "data_seconds": 0.5, "eval_seconds": 1.0}] * 2},
            {"elapsed": 5.0, "curve": [{"epoch_seconds": 3.0, "data_seconds": 0.5, "eval_seconds": 1.0}]}]
    parts = epoch_parts(runs)
    assert (parts["clock_s"], parts["train_s"], parts["data_s"], parts["eval_s"], parts["other_s"]) == \
        (15.0, 9.0, 1.5, 3.0, 3.0)
    assert parts["eval_share"] == pytest.approx(0.2) and parts["other_share"] == pytest.approx(0.2)


def test_step_parts_time_each_part_after_an_untimed_call(one_thread):
    (case,) = tta.expand_tta(options(**TINY), [False])
    reads = []

    def clock():  # every timed call lasts 1 s, except each part's first call, which lasts 100 s
        reads.append(None)
        call = (len(reads) - 1) // 2
        return float(len(reads)) + (99.0 if len(reads) % 2 == 0 and call < 4 else 0.0)

    parts = step_parts(case, steps=1, clock=clock)
    assert len(reads) == 2 * 4 * 2   # two reads per call, four parts, one untimed and one timed round
    for name in ("step_data_s", "step_forward_backward_s", "step_optimizer_s", "step_loop_overhead_s"):
        assert parts[name] == 1.0
    assert parts["step_s"] == 3.0 and parts["steps_timed"] == 1


# ------------------------------------------------------------------------------------------- the report's tables
def tta_frame():
    """Two cases as reports.load.load_bench gives them (case fields and the summary, as bench/test_tta.py records
    them), from scripted runs: plain fp32 with one miss, and channels_last that reached the target every time."""
    import dataclasses

    import pandas as pd

    rows = []
    for cl, statuses in ((False, ["reached"] * 4 + ["not reached"]), (True, ["reached"] * 5)):
        (case,) = tta.expand_tta(options(devices="cpu"), [cl])
        runs = runs_of(statuses, [2.0, 1.0, 3.0, 4.0, 9.0])
        for r in runs:
            r["curve"] = [{"epoch": 1, "seconds": r["elapsed"], "val_accuracy": 0.98}]
        rows.append({**dataclasses.asdict(case), **tta_stats.summarize(runs), "name": case.id, "threads": 2,
                     "curves": [r["curve"] for r in runs]})
    return pd.DataFrame(rows)


def test_every_column_of_the_time_to_accuracy_tables_reads_as_words_and_none_alike():
    from reports.readable import readable
    from reports.tta_tables import cases_table, seeds_table

    frame = tta_frame()
    for table in (cases_table(frame), seeds_table(frame)):
        headers = readable(table).headers
        assert not [h for h in headers if "_" in h], headers
        assert len(headers) == len(set(headers)), headers
    seeds = readable(seeds_table(frame))
    cells = {h: [row[i].text for row in seeds.rows] for i, h in enumerate(seeds.headers)}
    assert cells["seconds to target"][:5] == ["2.00 s", "1.00 s", "3.00 s", "4.00 s", "—"]   # the miss: no time
    assert cells["test accuracy"][0] == "98.0%" and cells["status"][4] == "not reached"
    cases = readable(cases_table(frame))
    cells = {h: [row[i].text for row in cases.rows] for i, h in enumerate(cases.headers)}
    assert cells["olympic mean (s)"] == ["3.00 s", "3.00 s"] and cells["interval level"] == ["93.8%", "93.8%"]
    assert cells["speed-up over plain fp32"] == ["1.00x", "1.00x"]
    assert cells["test accuracy (median)"] == ["98.0%", "98.0%"]
    from reports.tta_tables import cases_display
    assert cases_display(frame)["test accuracy (median)"].tolist() == ["98.0%", "98.0%"]
