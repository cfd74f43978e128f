"""This folder holds Databricks notebooks for nutter, not pytest modules.

Their names start with ``test_`` because the nutter CLI only runs notebooks named that way,
but they read ``spark`` and ``dbutils`` as globals and run at import: pytest must never
collect them. tests/harness/test_nutter_fixtures.py runs them through the notebook harness.
"""

collect_ignore_glob = ["*.py"]
