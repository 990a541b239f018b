"""The command line the remote workers parse: controller-only options out, test paths remapped into the tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_dumont.remote.gateway import OutsideRootdir, worker_args

VALUE_OPTIONS = ["--dumont-mode", "--dumont-remote-setup", "--dumont-json"]


def test_our_options_and_pytest_html_stay_on_the_runner(tmp_path: Path):
    (tmp_path / "tests").mkdir()
    args = [
        "-q",
        "--dumont-mode",
        "emulator",
        "--dumont-remote",
        "--dumont-remote-setup=pip install .",
        "--html",
        "report.html",
        "--self-contained-html",
        "-k",
        "gpu",
        "tests",
    ]
    out = worker_args(args, ["tests"], VALUE_OPTIONS, tmp_path, tmp_path, "/root/dumont-remote/proj")
    assert out == ["-q", "-k", "gpu", "/root/dumont-remote/proj/tests"]


def test_node_ids_from_a_subdirectory_are_remapped(tmp_path: Path):
    sub = tmp_path / "tests"
    sub.mkdir()
    out = worker_args(["test_a.py::test_x[1]"], ["test_a.py::test_x[1]"], [], sub, tmp_path, "/r/proj")
    assert out == ["/r/proj/tests/test_a.py::test_x[1]"]


def test_a_path_outside_the_rootdir_is_refused(tmp_path: Path):
    with pytest.raises(OutsideRootdir, match="outside the rootdir"):
        worker_args(["../elsewhere"], ["../elsewhere"], [], tmp_path, tmp_path, "/r/proj")
