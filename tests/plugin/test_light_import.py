"""Loading the plugin costs a suite without GPU tests nothing heavy: no SSH stack, no emulator."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "fabric",
    "paramiko",
    "invoke",
    "asyncssh",
    "vcr",
    "yaml",
    "pytest_dumont.emulator",
    "pytest_dumont.ssh",
    "pytest_dumont.cassettes.http",
)
# A prefix names a package and everything in it.
LOADED = "','.join(m for m in sys.modules if any(m == p or m.startswith(p + '.') for p in {prefixes!r}))"


def test_importing_the_plugin_imports_nothing_heavy():
    code = "import sys, pytest_dumont.plugin\nprint(" + LOADED.format(prefixes=HEAVY) + ")\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_a_replay_run_with_gpu_tests_imports_nothing_heavy(pytester):
    pytester.makepyfile(f"""
        import sys
        def test_gpu(vast_gpu):
            pass
        def test_report():
            print("HEAVY=" + {LOADED.format(prefixes=HEAVY)})
    """)
    result = pytester.runpytest_subprocess("-s", "-p", "no:xdist", "-p", "no:benchmark")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.re_match_lines([r".*HEAVY=$"])


REPORTING = ("pytest_dumont.reporting.", "pytest_dumont.provisioning.timing")


def test_a_run_without_gpu_tests_imports_and_builds_no_report(pytester):
    pytester.makepyfile(f"""
        import sys
        def test_plain():
            pass
        def test_zz_report(request):
            loaded = sorted(m for m in sys.modules if m.startswith({REPORTING!r}))
            print("REPORTING=" + ",".join(loaded))
    """)
    result = pytester.runpytest_subprocess("-s", "-p", "no:randomly", "--html=r.html", "--dumont-json=r.json")
    result.assert_outcomes(passed=2)
    result.stdout.re_match_lines([r".*REPORTING=$"])
    assert not (pytester.path / "r.json").exists()  # nothing to report: no file, no cost section
    assert "pytest-dumont" not in result.stdout.str().split("REPORTING=")[1]


# The cost records (``provisioning.records``) are the session state's: loading them is cheap and expected.
NOT_FOR_COLLECTION = (
    "pytest_dumont.provisioning.provisioner",
    "pytest_dumont.provisioning.contracts",
    "pytest_dumont.provisioning.pool",
    "pytest_dumont.safety",
    "pytest_dumont.session.prewarm",
)


def test_a_run_without_gpu_tests_loads_neither_the_budget_nor_the_lifecycle(pytester):
    # What a large CPU suite pays for the plugin at collection: its import, its options and two cheap hooks.
    pytester.makepyfile(f"""
        import sys
        def test_plain():
            print("LOADED=" + {LOADED.format(prefixes=NOT_FOR_COLLECTION)})
    """)
    result = pytester.runpytest_subprocess("-s", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.re_match_lines([r".*LOADED=$"])
