"""The suites' answer to the race between choosing a free port and a server binding it
(`processes.start_on_free_port`): a server whose port another process took meanwhile is started again on another
port, a bounded number of times, and a clear failure names every port when all were taken."""

import socket

import pytest

import processes


def start_redis_on(directory):
    def start(port):
        return port, processes.start_redis(
            "redis-server", ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(directory)], port, directory / f"redis-{port}.log",
        )
    return start


@pytest.fixture
def taken_port():
    """A port another process's socket listens on: binding it fails with "Address already in use"."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_server_whose_port_was_taken_starts_on_another(tmp_path, monkeypatch, taken_port):
    offered, choose = [taken_port], processes.free_port
    monkeypatch.setattr(processes, "free_port", lambda: offered.pop() if offered else choose())
    port, process = processes.start_on_free_port("redis-server", start_redis_on(tmp_path))
    try:
        assert offered == [] and port != taken_port
        assert processes.redis_answers_as(process, port)
    finally:
        processes.stop_process(process)


def test_a_start_whose_ports_are_all_taken_fails_naming_them(tmp_path, monkeypatch, taken_port):
    monkeypatch.setattr(processes, "free_port", lambda: taken_port)
    with pytest.raises(pytest.fail.Exception) as failure:
        processes.start_on_free_port("redis-server", start_redis_on(tmp_path))
    message = str(failure.value)
    assert f"redis-server could not listen in {processes.PORT_ATTEMPTS} attempts" in message, message
    assert f"(ports {[taken_port] * processes.PORT_ATTEMPTS})" in message, message
    assert "Address already in use" in message, message
