"""Anonymous requests cannot grow the audit log without bound (issue 12, hole 4):
unauthenticated refusals are counted per client address and reason (the first of a
minute as an entry, the rest of the minute as one entry with the count, first and
last time and a sample path cut to 256 bytes) and rate-limited per client address
with 429 and Retry-After; an authenticated principal's refusals stay one entry each,
and every entry names the client's address."""
import http.client

N = 1000


def get(port, path, token=None, source="127.0.0.1"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                   source_address=(source, 0))
    try:
        c.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token
                  else {})
        r = c.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def test_anonymous_flood_is_counted_and_limited(quelld):
    q = quelld()
    port = q.direct_port  # the client address must be quelld's own view of it
    # The refusals after a minute's first are counted by the node that refused them
    # and written when that node's audit log is read (src/api/refusals.c): node 0's.
    admin = q.api(node=0)
    before = admin.audit_count()
    long_path = "/api/v1/actions/" + "x" * 7500
    statuses = {}
    retry_after = set()
    for i in range(N):
        st, h = get(port, long_path if i % 2 else "/api/v1/identities")
        statuses[st] = statuses.get(st, 0) + 1
        if st == 429:
            retry_after.add(h.get("retry-after"))
    assert set(statuses) == {401, 429}, statuses
    assert statuses[429] >= N // 2, statuses
    assert None not in retry_after and all(int(v) >= 1 for v in retry_after), retry_after

    # another address is not held back by this one's flood; a token is never limited
    assert get(port, "/api/v1/identities", source="127.0.0.2")[0] == 401
    viewer = q.tokens["viewer"]
    assert get(port, "/api/v1/identities", token=viewer)[0] == 200

    new = admin.audit_after(before)
    anon = [e for e in new if e["actor"] == "anonymous"]
    mine = [e for e in anon if e["client"] == "127.0.0.1"]
    # at most the first and the rest, per reason (no token, rate limited)
    assert len(mine) <= 4, [(e["event"], e["detail"].get("count")) for e in mine]
    assert sum(e["detail"]["count"] for e in mine) == N, mine
    assert {e["event"] for e in mine} == {"auth.failed", "auth.rate_limited"}
    for e in mine:
        d = e["detail"]
        assert len(d["path"]) <= 256 and d["first_ms"] <= d["last_ms"], d
        assert e["actor_kind"] == "anonymous" and e["actor_id"] is None
    agg = [e for e in mine if e["detail"]["aggregated"]]
    assert agg and max(e["detail"]["count"] for e in agg) > 100
    other = [e for e in anon if e["client"] == "127.0.0.2"]
    assert len(other) == 1 and other[0]["detail"]["count"] == 1
    # every entry written from now on names its client address (this read's too)
    assert all(e["client"] == "127.0.0.1" for e in new if e["actor"] != "anonymous"
               and e["actor_kind"] != "system")

    # an authenticated principal's refusals: one entry each
    seq = admin.audit_count()
    for _ in range(5):
        assert get(port, "/api/v1/tokens", token=viewer)[0] == 403
    denied = [e for e in admin.audit_after(seq) if e["event"] == "access.denied"]
    assert len(denied) == 5 and all(e["actor"] == "e2e-viewer" and
                                    e["actor_kind"] == "token" and
                                    e["client"] == "127.0.0.1" for e in denied), denied
    assert q.admin.ok("GET", "/api/v1/audit/verify")["ok"] is True
