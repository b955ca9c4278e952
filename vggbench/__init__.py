"""The drivers that use the whole project, at the top of its layers: the demo (benchmarks, the demo study, the
report) and the GPU check. Nothing below imports them.

    python -m vggbench demo [--out runs/demo]        # ./dev demo
    python -m vggbench gpu-check [--dry-run]         # ./dev gpu-check
"""
