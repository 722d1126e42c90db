"""Run buildpolicy policy test cases under pytest, one test item per ``[[case]]``.

Installed with buildpolicy (entry point ``pytest11``), and inert until asked:

    pytest --buildpolicy policies/tests          # just the policy cases
    pytest --buildpolicy                          # plus your tests, when policies/tests is collected

or in the project's pytest configuration::

    [tool.pytest.ini_options]
    addopts = "--buildpolicy"
    testpaths = ["tests", "policies/tests"]

A case file is any ``*.toml`` in a ``policies/tests`` directory, or a ``.toml``
file named on the command line. Each case runs exactly as under
``buildpolicy test`` (see ``buildpolicy.policytest``) and a failure shows the
same expected-versus-actual report; an invalid case file is a collection
error with ``file:line:col``, without a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser) -> None:
    """``--buildpolicy`` and the ``buildpolicy`` ini option switch collection of case files on."""
    group = parser.getgroup("buildpolicy")
    group.addoption("--buildpolicy", action="store_true", default=False,
                    help="collect buildpolicy policy test cases (policies/tests/*.toml)")
    parser.addini("buildpolicy", type="bool", default=False, help="collect buildpolicy policy test cases")


def _enabled(config) -> bool:
    return bool(config.getoption("buildpolicy") or config.getini("buildpolicy"))


def _is_case_file(file_path: Path, parent) -> bool:
    if file_path.suffix != ".toml":
        return False
    if file_path.parent.name == "tests" and file_path.parent.parent.name == "policies":
        return True
    return parent.session.isinitpath(file_path)


def pytest_collect_file(file_path: Path, parent):
    """Collect a case file when enabled (cheap ``None`` otherwise: the plugin is always loaded)."""
    if _is_case_file(file_path, parent) and _enabled(parent.config):
        return PolicyCaseFile.from_parent(parent, path=file_path)
    return None


class PolicyCaseFile(pytest.File):
    """A case file: loads the project once and yields one item per case."""

    def collect(self):
        """Validate the file and its cases; yield a ``PolicyCase`` for each."""
        from buildpolicy.errors import BuildpolicyError
        from buildpolicy.team.policytest import CaseFile

        try:
            case_file = CaseFile(self.path)
        except BuildpolicyError as exc:
            raise self.CollectError("\n".join(str(m) for m in exc.messages)) from None
        for case in case_file.cases:
            yield PolicyCase.from_parent(self, name=case.name, case_file=case_file, case=case)


class PolicyCaseFailed(Exception):
    """A case's expectations did not hold; carries the ``CaseResult``."""

    def __init__(self, result):
        super().__init__(result.case.name)
        self.result = result


class PolicyCase(pytest.Item):
    """One ``[[case]]``."""

    def __init__(self, *, case_file, case, **kwargs):
        super().__init__(**kwargs)
        self.case_file = case_file
        self.case = case

    def runtest(self) -> None:
        """Evaluate the case hermetically; fail with the expected-versus-actual report."""
        result = self.case_file.run(self.case)
        if not result.passed:
            raise PolicyCaseFailed(result)

    def repr_failure(self, excinfo):
        """The same report as ``buildpolicy test`` (no Python traceback for a policy failure)."""
        if isinstance(excinfo.value, PolicyCaseFailed):
            from buildpolicy.team.policytest import format_result

            return format_result(excinfo.value.result)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        """Where the case is: its file and the line of its ``[[case]]`` header."""
        return self.path, (self.case.line or 1) - 1, f"policy case: {self.case.name}"
