import pytest

from vggcore.train.schedules import Schedule


def lrs(schedule, epochs, accuracies=None):
    out = []
    for e in range(epochs):
        out.append(schedule.lr(e))
        schedule.report(e, accuracies[e] if accuracies else 0.5)
    return out


def test_constant():
    assert lrs(Schedule("constant", 0.1, 4), 4) == [0.1] * 4


def test_step():
    assert lrs(Schedule("step", 1.0, 7, step_epochs=3, gamma=0.1), 7) == pytest.approx(
        [1, 1, 1, 0.1, 0.1, 0.1, 0.01])


def test_cosine():
    assert lrs(Schedule("cosine", 1.0, 4), 4) == pytest.approx([1.0, 0.853553, 0.5, 0.146447], rel=1e-5)


def test_warmup_then_cosine():
    assert lrs(Schedule("cosine", 1.0, 6, warmup_epochs=2), 6) == pytest.approx(
        [1 / 3, 2 / 3, 1.0, 0.853553, 0.5, 0.146447], rel=1e-5)


def test_plateau_divides_by_ten_when_accuracy_stalls():
    acc = [0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7]
    assert lrs(Schedule("plateau", 1.0, 7, patience=2), 7, acc) == pytest.approx(
        [1, 1, 1, 1, 0.1, 0.1, 0.1])


def test_plateau_drops_at_most_three_times():
    s = Schedule("plateau", 1.0, 30, patience=1)
    seq = lrs(s, 30, [0.5] * 30)
    assert min(seq) == pytest.approx(1e-3) and s.drops == 3
    assert len(set(round(x, 12) for x in seq)) == 4


def test_plateau_state_round_trips():
    s = Schedule("plateau", 1.0, 10, patience=1)
    lrs(s, 3, [0.5, 0.5, 0.5])
    t = Schedule("plateau", 1.0, 10, patience=1)
    t.load_state_dict(s.state_dict())
    assert t.lr(3) == s.lr(3) and t.state_dict() == s.state_dict()


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown schedule 'linear'; choose one of plateau, step, cosine, constant"):
        Schedule("linear", 0.1, 3)
