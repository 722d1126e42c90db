"""Team tooling beside the run: set/unset editing of layer files (``edit``), ``init``
scaffolding (``scaffold``), policy test cases (``policytest``) and their pytest
plugin (``pytest_plugin``), and ``doctor``'s build-environment checks (``doctor``).

May import the base modules and every stage (``policy`` to ``run``); no stage
imports it. This ``__init__`` imports nothing.
"""
