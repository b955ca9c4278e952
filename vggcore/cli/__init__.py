"""The `python -m vggcore` command lines (list, summary, train, evaluate, profile) and the parser every vggbench
command line uses. Imports from every room, lazily.
"""
