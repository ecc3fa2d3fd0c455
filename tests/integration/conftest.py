"""pytest glue for the integration tests: process logs on failure, and opt-in fixtures that
start a broker / bridges / clients and always end them (by PID) at teardown.

- Every failing test report gets a section with the log of each process (harness.Proc)
  started during that test, so `ctest --output-on-failure` explains the failure.
- Fixtures (function scope, only for tests that ask for them):
    broker   a private Mosquitto on a free loopback port
    bridges  a factory: bridges(broker_port, config=..., ...) -> harness.Bridge; at teardown
             each bridge still running is sent SIGTERM and must exit 0 with no sanitizer
             report in its log (a leak or ASan error anywhere fails the test)
    clients  a factory: clients(url, ...) -> harness.WS, closed at teardown
    publisher  a paho publisher connected to 'broker'
"""
import pytest

import harness


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    first = getattr(item, "_tb_first_proc", None)
    if rep.failed and first is not None:
        for p in harness.STARTED[first:]:
            rep.sections.append((f"log of {p.name} (pid {p.pid}, rc {p.p.poll()})", p.log()))


@pytest.fixture(autouse=True)
def _tb_track_procs(request):
    request.node._tb_first_proc = len(harness.STARTED)
    yield


@pytest.fixture
def broker():
    b = harness.Mosquitto()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def bridges():
    started = []

    def make(broker_port, **kw):
        b = harness.Bridge(broker_port, **kw)
        started.append(b)
        return b

    yield make
    errors = []
    for b in started:
        if b.alive():
            try:
                b.stop_clean()
            except AssertionError as e:
                errors.append(str(e))
        b.cleanup()
    if errors:
        pytest.fail("bridge did not stop cleanly:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def clients():
    opened = []

    def make(url, **kw):
        c = harness.WS(url, **kw)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


@pytest.fixture
def publisher(broker):
    p = harness.Publisher(broker.port)
    try:
        yield p
    finally:
        p.close()
