"""Markers are registered, documented and their arguments checked before anything runs."""

from __future__ import annotations

import pytest


def test_markers_are_listed_with_one_useful_line(pytester: pytest.Pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.real_gpu: the test rents a Vast.ai GPU*replays it from cassettes/*select with -m real_gpu",
            "@pytest.mark.dumont_offer(gpu=, max_dph=,*): offer filters and image for this test, class or module",
        ]
    )


def test_every_option_is_in_help_with_its_default(pytester: pytest.Pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*GPU integration tests on Vast.ai (pytest-dumont)*",
            "*--dumont-mode=MODE*",
            "*--dumont-gpu=NAMES*",
            "*--dumont-max-dph=USD*",
            "*--dumont-min-disk=GB*",
            "*--dumont-min-reliability=R*",
            "*--dumont-image=IMAGE*",
            "*--dumont-api-url=URL*",
            "*dumont_mode (string):*",
        ]
    )


def test_strict_markers_accept_ours(pytester: pytest.Pytester):
    pytester.makepyfile("""
        import pytest
        @pytest.mark.dumont_offer(gpu="RTX 3090", max_dph=0.3)
        @pytest.mark.real_gpu
        def test_x():
            pass
    """)
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("dumont_offer(gpus='RTX 4090')", "*argument 'gpus' (did you mean 'gpu'?); known arguments: bid, disk*"),
        ("dumont_offer('RTX 4090')", "*dumont_offer takes keyword arguments only*"),
        ("dumont_offer(max_dph='cheap')", "*dumont_offer(max_dph='cheap'): max_dph must be a number above 0 (highest*"),
        ("dumont_offer(verified='yes')", "*dumont_offer(verified='yes'): verified must be True or False*"),
        ("dumont_offer(min_reliability=2)", "*(min_reliability=2): min_reliability must be a number between 0 and 1*"),
    ],
)
def test_bad_marker_arguments_are_usage_errors(pytester: pytest.Pytester, marker, message):
    pytester.makepyfile(f"""
        import pytest
        @pytest.mark.{marker}
        def test_x():
            pass
    """)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_closest_marker_wins_per_argument(pytester: pytest.Pytester):
    pytester.makepyfile("""
        import pytest
        from pytest_dumont.session.markers import provision_request
        from pytest_dumont.session.state import get_state

        pytestmark = pytest.mark.dumont_offer(gpu="RTX 3090", max_dph=0.3)

        @pytest.mark.dumont_offer(max_dph=0.2, image="ubuntu:22.04")
        def test_x(request):
            req = provision_request(request.node, get_state(request.config).settings)
            assert req.filters.gpu_names == ("RTX 3090",)
            assert req.filters.max_dph == 0.2
            assert req.filters.min_disk_gb == 55.0
            assert req.image == "ubuntu:22.04"
    """)
    pytester.runpytest("--dumont-min-disk=55").assert_outcomes(passed=1)
