"""GET /api/v1/actions: filters and paging over a small known set."""
import time


def ids(actions):
    return [a["id"] for a in actions]


def test_action_filters_and_paging(quelld, make_user):
    q = quelld()
    api = q.api("responder")
    a, b = make_user(q, "lsa"), make_user(q, "lsb")
    made = []
    for t, u in (("disable", a), ("enable", a), ("force_password_change", b),
                 ("disable", b)):
        made.append(api.run(t, u.identity_id))
    time.sleep(0.01)  # the next actions are created strictly after `since`
    since = made[-1]["created_at"]
    time.sleep(0.01)
    later = [api.run("enable", b.identity_id), api.run("disable", a.identity_id)]
    r = q.api("viewer").post("/api/v1/actions", {"type": "disable", "identity_id":
                                                 b.identity_id, "reason": "not allowed"})
    assert r.status == 403
    denied = r.error["action_id"]
    made += later
    every = ids(made) + [denied]
    assert {x["status"] for x in made} == {"completed"}

    full = api.actions_all()
    assert sorted(ids(full), reverse=True) == ids(full), "not newest first"
    assert set(ids(full)) == set(every) and len(full) == len(every)
    assert all("steps" not in x for x in full)

    def listed(query):
        j = api.ok("GET", f"/api/v1/actions?{query}")
        return j, ids(j["actions"])

    _, got = listed("status=completed")
    assert set(got) == set(ids(made))
    _, got = listed("status=denied")
    assert got == [denied]
    _, got = listed("status=running")
    assert got == []
    _, got = listed("type=disable")
    assert set(got) == {x["id"] for x in made if x["type"] == "disable"} | {denied}
    _, got = listed("type=force_password_change")
    assert got == [made[2]["id"]]
    _, got = listed(f"identity_id={a.identity_id}")
    assert set(got) == {x["id"] for x in made if x["identity_id"] == a.identity_id}
    _, got = listed(f"identity_id={b.identity_id}&type=enable")
    assert got == [later[0]["id"]]
    _, got = listed(f"identity_id={b.identity_id}&status=denied&type=disable")
    assert got == [denied]
    _, got = listed("identity_id=idn_" + "0" * 24)
    assert got == []

    # since: at or after the given time
    _, got = listed(f"since={since}")
    assert set(got) == {made[3]["id"], *ids(later), denied}
    _, got = listed("since=2999-01-01T00:00:00Z")
    assert got == []
    _, got = listed("since=2000-01-01T00:00:00Z")
    assert set(got) == set(every)

    # paging: limit + before walks everything exactly once, newest first
    pages, before = [], None
    while True:
        j, got = listed("limit=2" + (f"&before={before}" if before else ""))
        assert len(got) <= 2
        pages.append(got)
        if j["next"] is None:
            break
        assert j["next"] == got[-1]
        before = j["next"]
    flat = [x for p in pages for x in p]
    assert flat == ids(full)
    assert len(pages) == (len(every) + 1) // 2 + (1 if len(every) % 2 == 0 else 0)
    j, got = listed("limit=1")
    assert got == [ids(full)[0]] and j["next"] == got[0]
    j, got = listed(f"limit=1000&before={ids(full)[2]}")
    assert got == ids(full)[3:] and j["next"] is None
    j, got = listed(f"limit=3&type=disable&before={ids(full)[0]}")
    assert got == [x for x in ids(full)[1:] if x in
                   {y["id"] for y in made if y["type"] == "disable"} | {denied}][:3]
