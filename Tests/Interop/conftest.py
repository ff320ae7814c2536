"""Session fixture: runs the real Swift interop server (Tests/InteropServer) once for the whole suite.

Nothing is built here; tools/test builds first. The executable is found with `swift build --show-bin-path`
(honouring SOCKET_GATEWAY_SCRATCH_PATH), or given directly with SOCKET_GATEWAY_INTEROP_SERVER.
"""

import pytest

from interop import TRANSPORTS
from processes import InteropServer, interop_server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    yield from interop_server(tmp_path_factory, "interop-server")


@pytest.fixture(autouse=True)
def server_alive(request, server):
    """Fails a test clearly (with the server's log) if the server died before or during it."""
    if server.process.poll() is not None:
        pytest.fail(f"interop server exited with status {server.process.returncode}\n{server.log_tail()}")
    yield
    if server.process.poll() is not None:
        pytest.fail(f"interop server died during the test (status {server.process.returncode})\n{server.log_tail()}")


@pytest.fixture(params=sorted(TRANSPORTS), ids=sorted(TRANSPORTS))
def transports(request):
    """Runs a test once over WebSocket only and once over HTTP long-polling only."""
    return TRANSPORTS[request.param]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the tail of the server's log to every failed test report."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        info = item.funcargs.get("server")
        if isinstance(info, InteropServer):
            report.sections.append(("interop server log (last 30 lines)", info.log_tail(30)))
