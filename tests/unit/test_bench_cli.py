"""Every benchmark's own command line (``python -m bench.<name>``) uses pfrps' one parser type:
a bad option is one line naming it, exit status 2, no usage dump, no traceback."""

import pytest

from tests.helpers import assert_bad_input, run_cli

BENCH_MODULES = ("bench", "bench.ac_bench", "bench.bng", "bench.bng_aaa", "bench.fault", "bench.fuzz",
                 "bench.handler", "bench.handler_micro", "bench.handler_serve", "bench.metrics",
                 "bench.profile_wakeups", "bench.xdp_broadcast", "bench.xdp_l3fwd")


@pytest.mark.parametrize("module", BENCH_MODULES)
def test_bench_bad_option_is_one_line_exit_2(module):
    required = ["--kind", "tx", "-i", "lo"] if module == "bench.handler_serve" else []
    res = run_cli(module, [*required, "--no-such-option"])
    assert_bad_input(res, f"python -m {module}", "--no-such-option")
