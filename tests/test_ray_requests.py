"""Ray requests refused at once in one line (issue 21): no Ray is started for them."""

from __future__ import annotations

import math
import socket

import pytest

from ssd.backends.ray_backend import RayBackend
from ssd.errors import UserError


@pytest.mark.parametrize("options", [{"cpus_per_run": math.nan}, {"cpus_per_run": math.inf},
                                     {"gpus_per_run": math.nan}, {"gpus_per_run": math.inf}])
def test_nan_and_inf_resources_are_refused_before_ray_starts(options: dict) -> None:
    """Old: `--cpus-per-run nan` passed the `> 0` check and failed with a traceback once a local
    Ray had started (int(CPUs / nan))."""
    with pytest.raises(UserError, match="--cpus-per-run must be > 0"):
        RayBackend(**options)


def test_an_address_where_nothing_listens_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Old: `--ray-address 127.0.0.1:1` went to ray.init, which retried for minutes printing
    warnings. Now a TCP probe refuses it with the existing one-line error before ray.init."""
    ray = pytest.importorskip("ray")
    with socket.socket() as s:  # a port nobody listens on: bound, then released
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def no_init(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("ray.init was called for an address where nothing listens")

    monkeypatch.setattr(ray, "init", no_init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(UserError, match="cannot start or reach Ray at .*check --ray-address"):
            RayBackend(address=address)._connect()
