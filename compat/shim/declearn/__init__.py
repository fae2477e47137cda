"""Import shim: declearn's module names over flwr_declearn (see compat/README.md).

Only the declearn 2.9.1 test-suite runner (`compat/run_declearn_tests.py`)
puts this package on the path; it stands in for declearn, which must not be
importable alongside it.
"""

FLWR_DECLEARN_SHIM = True
