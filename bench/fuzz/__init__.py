"""Coverage-guided fuzzers (atheris/libFuzzer) for the inputs strangers control.

Targets: `query` (the staff query language and both compilers), `extract` (HTML → article),
`urls` (URL normalisation and document ids), and `all` (one run that feeds the three, chosen by the
first input byte). Run: `python -m bench.fuzz TARGET --seconds N`. Each target checks properties,
not just "no crash": an input either gives a result that keeps its invariants or is rejected with
the module's own error (QueryError, InvalidURLError, None for "no article"). Findings are written
under bench/out/fuzz/ and become explicit regression examples in tests/reliability.
"""
