"""A pytest plugin for ``evals/bench/scope_compare.py --tests``: the parse scope mode stands in
for the rules extractor (``RulesExtractor`` and the registry name ``rules``), so that the
rules' regression tests can be run against it:

    PYTHONPATH=. python -m pytest tests/test_error_classes.py -p evals.bench.parse_as_rules
"""

from __future__ import annotations


def pytest_configure(config) -> None:
    import reportgen.checkers.graphs.rules as rules
    from evals.bench.scope_parse import ParseScopeExtractor

    rules.RulesExtractor = ParseScopeExtractor
