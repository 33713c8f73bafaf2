"""kill -9 in the middle of a batch: no action is lost or left open, effects are exact."""

from conftest import TERMINAL, UAC_DISABLE, wait_for

N = 200


def test_kill9_mid_batch(lab, quelld):
    prefix = lab.tag + "k"
    sams = lab.users(N, prefix, nopw=True)
    try:
        # few workers so that the kill lands while most of the batch is still open
        q = quelld(server={"workers": 2}, system={"max_concurrency": 2})
        q.sync()
        ids = {s: q.identity_of(s)["id"] for s in sams}
        before = lab.uacs(prefix)
        assert len(before) == N and all(v & UAC_DISABLE == 0 for v in before.values())

        api = q.api("responder")

        # One bulk request queues the whole batch at once: submitted one by one, the
        # first actions finish while the last are still being sent.
        r = api.post("/api/v1/actions/bulk", {
            "type": "disable", "reason": "crash test",
            "requests": [{"identity_id": ids[s]} for s in sams]})
        assert r.status == 200, r
        action_ids = [x["action_id"] for x in r.json["results"]]
        assert len(set(action_ids)) == N

        # One small page per poll, so that the kill follows the fifth completion at
        # once: AD steps go 32 to a connection, and the batch is done within seconds.
        def some_done():
            r = api.get("/api/v1/actions?status=completed&limit=5")
            assert r.status == 200, r
            return len(r.json["actions"]) >= 5
        wait_for(some_done, 60, interval=0.01, what="the first actions to complete")
        q.kill()

        # the store as the crash left it: something still open, maybe a step running
        with q.db_conn() as db:
            open_before = db.execute(
                "SELECT count(*) FROM actions WHERE status NOT IN "
                "('completed','partially_completed','failed','cancelled','denied','rejected')"
            ).fetchone()[0]
        assert open_before > 0

        q.start()
        api = q.api("responder")

        def all_terminal():
            acts = api.actions_all("type=disable")
            return acts if sum(a["status"] in TERMINAL for a in acts) == N else None
        acts = wait_for(all_terminal, 120, interval=0.2, what="every action to finish")
        assert len(acts) == N and {a["id"] for a in acts} == set(action_ids)
        assert {a["status"] for a in acts} == {"completed"}, \
            sorted({(a["status"], a["message"]) for a in acts if a["status"] != "completed"})

        for aid in action_ids[:: N // 20]:  # a sample, in detail
            a = api.action(aid)
            assert len(a["steps"]) == 1 and a["steps"][0]["status"] == "succeeded", a
            assert a["finished_at"] is not None

        after = lab.uacs(prefix)
        not_disabled = [s for s, v in after.items() if not v & UAC_DISABLE]
        assert not not_disabled, f"{len(not_disabled)} accounts not disabled: {not_disabled[:5]}"
        changed = [s for s in sams if after[s] != before[s] | UAC_DISABLE]
        assert not changed, f"other bits changed on {changed[:5]}"

        # one completion per action, and the chain survived the crash
        audit = q.admin.audit_all()
        completed = {}
        for e in audit:
            if e["event"] == "action.completed":
                completed[e["action_id"]] = completed.get(e["action_id"], 0) + 1
        assert set(completed) == set(action_ids)
        assert set(completed.values()) == {1}, "an action completed more than once"
        v = q.admin.ok("GET", "/api/v1/audit/verify")
        assert v["ok"] is True and v["entries"] == len(audit), v
    finally:
        ldif = "".join(
            f"dn: CN={s},CN=Users,{lab.base_dn}\nchangetype: modify\n"
            f"replace: userAccountControl\nuserAccountControl: 544\n\n" for s in sams)
        lab.modify(ldif)
