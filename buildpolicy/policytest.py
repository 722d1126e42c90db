"""Policy test cases, kept importable here for code written against
``buildpolicy.policytest`` (``run_case_files`` and friends); they live in
``buildpolicy.team.policytest``."""

from buildpolicy.team.policytest import *  # noqa: F403 - the public names
from buildpolicy.team.policytest import (  # noqa: F401 - named for readers and linters
    Case,
    CaseResult,
    find_case_files,
    format_result,
    load_cases,
    run_case_files,
    summary,
)
