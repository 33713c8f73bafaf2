"""Inventory sync on a schedule: with sync_interval set, quelld syncs the directory by
itself — a user added to AD after start becomes an identity without anyone asking."""
import pytest

from conftest import wait_for


@pytest.mark.timer("the first scheduled run comes a minute after start")
def test_scheduled_sync_picks_up_a_new_user(lab, quelld):
    q = quelld(system={"sync_interval": "1m"})
    (corp,) = [s for s in q.admin.ok("GET", "/api/v1/sync")["systems"]
               if s["system"] == "corp"]
    assert corp["interval_s"] == 60 and corp["next_run_at"] is not None, corp
    sam = lab.name("sched")
    lab.adduser(sam, sam, "Sched-Pw-1a!", 512)

    def scheduled():
        (s,) = [x for x in q.admin.ok("GET", "/api/v1/sync")["systems"]
                if x["system"] == "corp"]
        return s if s["finished_run"] >= 1 and not s["running"] else None
    # the first scheduled run comes one interval after start: a bound, not a timing
    s = wait_for(scheduled, 150, interval=1, what="the scheduled sync")
    assert s["requested_by"] == "scheduler", s
    assert s["error"] is None and s["mode"] == "full", s
    idn = q.identity_of(sam)
    (acct,) = idn["accounts"]
    assert acct["link_rule"] == "new account" and acct["linked_by"] == "sync", acct
    assert s["next_run_at"] is not None
