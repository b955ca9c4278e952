"""xdist_group for pytest >= 9.2: pytest-xdist (3.8) marks a grouped test by setting `item._nodeid` to
"NODEID@GROUP", which pytest 9.2 no longer reads (`nodeid` is built from `item._id`), so `--dist loadgroup` saw no
group at all and split every group over the workers. After xdist's own hook, the suffixed id becomes the item's
id, as it was on older pytest. Loaded by tests/conftest.py; a no-op where xdist or the attribute is absent."""

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist") or not config.getoption("loadgroup", False):
        return
    try:
        from _pytest.nodeid import coerce_node_id   # pytest >= 9.2; older pytest reads _nodeid itself
    except ImportError:
        return
    for item in items:
        suffixed = item.__dict__.get("_nodeid")
        if isinstance(suffixed, str) and "@" in suffixed and item.nodeid != suffixed:
            item._id = coerce_node_id(suffixed)
