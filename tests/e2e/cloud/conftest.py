"""Fixtures for the cloud end-to-end tests: the Graph emulator and the Okta emulator,
each behind Prism proxies (every request quelld sends is checked against the vendor's
OpenAPI subset; a refused request or a violating answer fails the test that caused it),
and quelld with a [system "cloud"] of kind entra or okta pointing at the proxies.

The parent conftest (tests/e2e/conftest.py) provides QUELL_BUILD handling, Api,
wait_for and the Samba lab fixture (used only by the two-system test)."""
import tempfile
import shutil
from pathlib import Path

import pytest

from .cloudlib import (GRAPH_SERVER, GRAPH_SPEC, OKTA_SERVER, OKTA_SPEC, PRISM, PRISMS,
                       SCIM_SERVER, TOKEN_SPEC, CloudQuelld, Emulator, Prism, new_guid,
                       secret_file)

TENANT = "quelle2e.onmicrosoft.com"
OKTA_TOKEN = "00cloudE2E" + "x" * 30


def _need(*paths):
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


@pytest.fixture(scope="session")
def cloud_dir():
    d = Path(tempfile.mkdtemp(prefix="quell-cloud-e2e-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(autouse=True)
def contract_clean():
    """Fails the test if any Prism logged a refused request or a violating answer while
    it ran (Prisms started by a session fixture during the test are checked whole)."""
    before = {id(p): p.size() for p in PRISMS}
    yield
    for p in list(PRISMS):
        p.settle()  # Prism logs a refusal just after it answers
    bad = []
    for p in list(PRISMS):
        for line in p.problems(before.get(id(p), 0)):
            bad.append(f"prism {p.name}: {line.strip()}")
    assert not bad, "contract check failed:\n" + "\n".join(bad[:20])


class Graph:
    """The Graph emulator with its two Prisms (Graph subset, token subset)."""

    def __init__(self, workdir):
        self.emu = Emulator(GRAPH_SERVER, ["--ip-rps", "1"], workdir, "graph")
        try:
            self.graph_prism = Prism(GRAPH_SPEC, f"{self.emu.url}/v1.0", workdir, "graph")
            self.login_prism = Prism(TOKEN_SPEC, self.emu.url, workdir, "login")
        except Exception:
            self.stop()
            raise
        self.emu.ctl("PUT", "/config", {"graph_base_url": self.graph_prism.url,
                                        "login_base_url": self.login_prism.url})
        self.client_id = new_guid()
        self.secret = "e2e~" + new_guid()
        self.app(TENANT)

    def app(self, tenant):
        self.emu.ctl("POST", "/apps", {"tenant": tenant, "client_id": self.client_id,
                                       "secret": self.secret})

    def seed(self, users, tenant=TENANT):
        return self.emu.ctl("POST", "/users", {"tenant": tenant, "users": users})["ids"]

    def user(self, ref, tenant=TENANT):
        return self.emu.ctl("GET", f"/users/{ref}?tenant={tenant}")

    def stats(self):
        return self.emu.ctl("GET", "/stats?last=2000")

    def system(self, workdir, tenant=TENANT, **extra):
        sf = secret_file(workdir, "entra.secret", self.secret)
        return {"kind": "entra", "tenant": tenant, "client_id": self.client_id,
                "client_secret_file": sf, "login_base": self.login_prism.url,
                "graph_base": self.graph_prism.url, "timeout": 20,
                "max_concurrency": 1,
                # Identity Protection allows 1 request/s per tenant; quell paces at exactly
                # ip_rps, and a proxy's jitter can bring two paced calls <1 s apart at the
                # emulator (a 429 and a retry). A little headroom keeps call counts exact.
                "ip_rps": 0.8, **extra}

    def stop(self):
        for p in (getattr(self, "graph_prism", None), getattr(self, "login_prism", None)):
            if p is not None:
                p.stop()
        self.emu.stop()


@pytest.fixture(scope="session")
def graph(cloud_dir):
    _need(PRISM, GRAPH_SPEC, TOKEN_SPEC, GRAPH_SERVER)
    g = Graph(cloud_dir / "graph")
    yield g
    g.stop()


@pytest.fixture(scope="session")
def entra(graph, cloud_dir):
    """quelld with one Entra system "cloud" (max_concurrency 1: steps of one system run
    one job at a time, so ready mark_compromised steps gather into full batches)."""
    d = cloud_dir / "quelld-entra"
    d.mkdir()
    # One node: Identity Protection's 1 request/s per tenant is paced per node (ip_rps),
    # and ready steps gather into batches per node.
    q = CloudQuelld(d, {"cloud": graph.system(d)}, nodes=1)
    q.start()
    yield q
    q.stop()


class Okta:
    def __init__(self, workdir):
        self.emu = Emulator(OKTA_SERVER, [], workdir, "okta")
        try:
            self.prism = Prism(OKTA_SPEC, self.emu.url, workdir, "okta")
        except Exception:
            self.emu.stop()
            raise
        self.emu.ctl("PUT", "/config", {"public_url": self.prism.url})
        self.emu.ctl("POST", "/tokens", {"token": OKTA_TOKEN})

    def seed(self, users):
        return self.emu.ctl("POST", "/users", {"users": users})["ids"]

    def user(self, ref):
        return self.emu.ctl("GET", f"/users/{ref}")

    def stats(self):
        return self.emu.ctl("GET", "/stats")

    def system(self, workdir, **extra):
        tf = secret_file(workdir, "okta.token", OKTA_TOKEN)
        return {"kind": "okta", "org_url": self.prism.url, "allow_plaintext": "yes",
                "api_token_file": tf, "timeout": 20, "max_concurrency": 4, **extra}

    def stop(self):
        self.prism.stop()
        self.emu.stop()


@pytest.fixture(scope="session")
def okta_emu(cloud_dir):
    _need(PRISM, OKTA_SPEC, OKTA_SERVER)
    o = Okta(cloud_dir / "okta")
    yield o
    o.stop()


@pytest.fixture(scope="session")
def okta(okta_emu, cloud_dir):
    d = cloud_dir / "quelld-okta"
    d.mkdir()
    q = CloudQuelld(d, {"cloud": okta_emu.system(d)})
    q.start()
    yield q
    q.stop()


SCIM_TOKEN = "scim-e2e-" + "y" * 24


class Scim:
    """The SCIM emulator (SCIMMY on Express): SCIMMY validates every request itself."""

    def __init__(self, workdir):
        self.emu = Emulator(SCIM_SERVER, [], workdir, "scim")
        self.emu.ctl("POST", "/tokens", {"token": SCIM_TOKEN})
        self.url = f"{self.emu.url}/scim/v2"

    def seed(self, users):
        return self.emu.ctl("POST", "/users", {"users": users})["ids"]

    def user(self, ref, want=(200,)):
        return self.emu.ctl("GET", f"/users/{ref}", want=want)

    def stats(self):
        return self.emu.ctl("GET", "/stats")

    def config(self, **kv):
        return self.emu.ctl("PUT", "/config", kv)

    def fault(self, **kv):
        self.emu.ctl("POST", "/faults", kv)

    def system(self, workdir, **extra):
        tf = secret_file(workdir, "scim.token", SCIM_TOKEN)
        return {"kind": "scim", "url": self.url, "allow_plaintext": "yes",
                "token_file": tf, "timeout": 20, "max_concurrency": 4, **extra}

    def stop(self):
        self.emu.stop()


@pytest.fixture(scope="session")
def scim_emu(cloud_dir):
    _need(SCIM_SERVER)
    s = Scim(cloud_dir / "scim")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def scim(scim_emu, cloud_dir):
    """quelld with one SCIM system "apps"."""
    d = cloud_dir / "quelld-scim"
    d.mkdir()
    q = CloudQuelld(d, {"apps": scim_emu.system(d)})
    q.start()
    yield q
    q.stop()
