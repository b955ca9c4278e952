"""Records as results.jsonl holds them: the tests that check what was written read the JSON form of the typed
records `Store.read` returns (`RunRecord.to_json`, which writes back exactly what was read)."""

from ablations.store import read_results


def json_records(path, warn: bool = True) -> dict[str, dict]:
    """run_id -> the latest record of that run in the results file at `path`, as JSON."""
    return {rid: r.to_json() for rid, r in read_results(path, warn=warn).records.items()}
