"""The account is the source of truth: unknown outcomes settled on evidence, never by a send."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest

from importer.codes import RequestState
from importer.reconcile import judge
from importer.sandbox import DEFAULT_API_KEY, Faults
from importer.timing import ClockSkew, ShiftedClock, use_clock

from .conftest import PHONES, STAGE_NEW, people, read_results


def test_both_kinds_of_500_are_told_apart_and_resume_sends_only_the_unprocessed(
        sandbox, write_config, write_csv, invoke, tmp_path):
    """500s that processed the ticket and 500s that did not both end unknown; reconcile
    makes the first sent (with the right contact) and the second failed; --resume then sends
    exactly those, and every customer has one ticket."""
    # latency: the account creates a contact 50 ms after the request reaches it, as over a
    # network; reconcile must tell that from the request's moment through the clocks' skew
    sandbox.state.faults = Faults(fail_500=0.25, fail_500_unprocessed=0.25, seed=11,
                                  latency=0.05)
    config = write_config(sandbox.url, message={"content": "Hola {Nombre}"})
    source = write_csv(people(40))
    first = invoke("run", source, "--config", config)
    assert first.exit_code == 5
    assert f"vambe-import reconcile --out clientes-import --config {config} checks" in first.stdout
    out = tmp_path / "clientes-import"
    unknown = {r["phone"] for r in read_results(out) if r["status"] == "unknown"}
    processed = {f"+{digits}" for digits in sandbox.state.tickets_per_phone()}
    assert unknown & processed and unknown - processed  # the seed gives both kinds
    sandbox.state.faults = Faults()
    settled = invoke("reconcile", "--out", "clientes-import", "--config", config)
    assert settled.exit_code == 5, settled.output  # the unprocessed ones: --resume sends them
    rows = {r["phone"]: r for r in read_results(out)}
    for phone in unknown & processed:
        assert rows[phone]["status"] == "sent"
        assert rows[phone]["ai_contact_id"] == sandbox.state.contacts[phone[1:]]
    for phone in unknown - processed:
        assert (rows[phone]["status"], rows[phone]["error_code"]) == ("failed", "not_processed")
        assert rows[phone]["error"] == ("no such contact in the account: the request was not"
                                        " processed; --resume sends it")
    tickets_before = len(sandbox.state.tickets)
    resumed = invoke("run", source, "--config", config, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert len(sandbox.state.tickets) == tickets_before + len(unknown - processed)
    assert set(sandbox.state.tickets_per_phone().values()) == {1}
    assert len(sandbox.state.tickets) == 40


def test_reconcile_opens_no_ticket_and_resume_reconcile_does_it_first(sandbox, write_config,
                                                                      write_csv, invoke,
                                                                      tmp_path):
    """``run --resume --reconcile`` settles before resuming; reconcile itself only reads."""
    sandbox.state.faults = Faults(fail_500_unprocessed=1.0)
    config = write_config(sandbox.url)
    source = write_csv(people(3))
    assert invoke("run", source, "--config", config).exit_code == 5
    sandbox.state.faults = Faults()
    seen = len(sandbox.state.received)
    result = invoke("run", source, "--config", config, "--resume", "--reconcile")
    assert result.exit_code == 0, result.output
    searches = [r.path for r in sandbox.state.received[seen:]
                if r.path == "/api/public/contacts/search"]
    assert len(searches) == 3
    assert set(sandbox.state.tickets_per_phone().values()) == {1}
    assert len(sandbox.state.tickets) == 3


def test_evidence_that_cannot_decide_stays_unknown_and_says_why(sandbox, write_config,
                                                                write_csv, invoke, tmp_path):
    """A contact that existed before the request, whose last message is not ours: unknown,
    with the evidence; reconcile exits 1."""
    long_ago = time.time() - 40 * 86400
    sandbox.state.seed_contact(PHONES[0], name="Ana", created_at=long_ago,
                               last_message="¿Tienen envío a Talca?",
                               last_message_at=long_ago + 86400)
    sandbox.state.faults = Faults(fail_500_unprocessed=1.0)
    config = write_config(sandbox.url, message={"content": "Hola {Nombre}"})
    assert invoke("run", write_csv(people(1)), "--config", config).exit_code == 5
    result = invoke("reconcile", "--out", "clientes-import", "--config", config)
    assert result.exit_code == 5
    day = time.strftime("%Y-%m-%d", time.gmtime(long_ago))
    last = time.strftime("%Y-%m-%d", time.gmtime(long_ago + 86400))
    assert read_results(tmp_path / "clientes-import")[0]["error"] == (
        f"still unknown after reconcile: contact exists since {day}; its last message, on"
        f" {last}, is not ours")
    assert "1 rows are still unknown" in result.stdout


def test_the_evidence_rule_compares_digits_exactly():
    """A fuzzy match on another number is no contact; our message, newer than the request,
    is proof; a newer contact is proof."""
    sent = 1_800_000_000.0
    other = {"id": "x", "phone": "+56987654399", "created_at": "2027-01-15T08:00:00Z"}
    assert judge(PHONES[0], sent, "Hola", [other]).state == RequestState.FAILED
    ours = {"id": "c1", "phone": PHONES[0], "created_at": "2020-01-01T00:00:00Z",
            "last_message_at": "2027-01-15T08:00:05.000Z", "last_message_content": "Hola"}
    assert judge(PHONES[0], sent, "Hola", [other, ours]) == (RequestState.SENT, "c1", "", "")
    assert judge(PHONES[0], sent, "Chao", [ours]).state == RequestState.UNKNOWN
    new = {"id": "c2", "phone": "56 9 8765 4321", "created_at": "2027-01-15T08:00:00+00:00"}
    assert judge(PHONES[0], sent, None, [new]).ai_contact_id == "c2"


def test_reconcile_needs_a_run(write_config, invoke, sandbox):
    """A folder without a run: exit 2, one line."""
    result = invoke("reconcile", "--out", "nada", "--config", write_config(sandbox.url))
    assert (result.exit_code, result.stderr) == (2, "Error: nada holds no run to reconcile\n")


def test_statuses_of_a_reconciled_run_are_complete(sandbox, write_config, write_csv, invoke,
                                                   tmp_path):
    """Every row of the rewritten reports keeps one status (no row lost by reconcile)."""
    sandbox.state.faults = Faults(fail_500=0.5, seed=2, latency=0.05)  # as over a network
    config = write_config(sandbox.url, defaults={"stage_id": STAGE_NEW, "country": "CL"})
    source = write_csv(people(10) + [["Sin", "123", ""]])
    invoke("run", source, "--config", config)
    sandbox.state.faults = Faults()
    invoke("reconcile", "--out", "clientes-import", "--config", config)
    statuses = Counter(r["status"] for r in read_results(tmp_path / "clientes-import"))
    assert statuses == Counter({"sent": 10, "invalid": 1})


# ---------------------------------------------------------------- open tickets, channels, init


def test_skip_open_tickets_looks_each_phone_up_first(sandbox, write_config, write_csv, invoke,
                                                     tmp_path):
    """A customer with an open ticket is skipped, naming its stage; the others are sent; the
    plan says the look-ups share the rate."""
    sandbox.state.seed_contact(PHONES[1], name="Luis", open_ticket_stage=STAGE_NEW)
    sandbox.state.seed_contact("+56 9 8765 0000", open_ticket_stage=STAGE_NEW)  # fuzzy neighbour
    config = write_config(sandbox.url, dedupe={"skip_open_tickets": True})
    result = invoke("run", write_csv(people(3)), "--config", config, "--yes")
    assert result.exit_code == 5
    rows = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error_code"], r["error"]) for r in rows] == [
        ("sent", "", ""), ("skipped", "open_ticket",
                           "already has an open ticket, in stage Nuevo"), ("sent", "", "")]
    searches = [r for r in sandbox.state.received if r.path == "/api/public/contacts/search"]
    assert len(searches) == 3
    assert sorted(b["to_phone_number"] for b in sandbox.state.ticket_bodies()) == [
        PHONES[0], PHONES[2]]


def test_channels_lists_the_accounts_phone_ids(sandbox, write_config, invoke):
    """``channels`` shows each channel's type, phone ID, name and number; --json for scripts."""
    config = write_config(sandbox.url)
    table = invoke("channels", "--config", config)
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines() == [
        "TYPE          PHONE ID       NAME                            NUMBER",
        "whatsapp      123456789      Sandbox WhatsApp 123456789      +56 9 8765 4321",
        "web-whatsapp  phone_sandbox  Sandbox WhatsApp phone_sandbox  +56 9 8765 4321",
    ]
    import json

    listed = json.loads(invoke("channels", "--config", config, "--json").stdout)
    assert [(c["type"], c["id"]) for c in listed] == [("whatsapp", "123456789"),
                                                      ("web-whatsapp", "phone_sandbox")]
    assert invoke("channels", "--config", config, api_key=None).exit_code == 2


def test_init_with_a_key_writes_the_real_phone_id_and_lists_stages(sandbox, write_csv, invoke,
                                                                   tmp_path):
    """One WhatsApp channel: its phone ID is written; the stages are listed as comments. Two:
    both listed, the example kept."""
    source = write_csv(people(3))
    sandbox.state.phone_ids = ("987654321",)
    made = invoke("init", source, "--base-url", sandbox.url)
    assert made.exit_code == 0, made.output
    text = (tmp_path / "config.toml").read_text(encoding="utf-8")
    assert 'phone_id = "987654321"' in text
    assert f"#   {STAGE_NEW}  Ventas / Nuevo" in text
    assert "Replace stage_id (vambe-import stages" in made.stdout
    sandbox.state.phone_ids = ("111", "222")
    made = invoke("init", source, "--base-url", sandbox.url, "-o", "two.toml")
    text = (tmp_path / "two.toml").read_text(encoding="utf-8")
    assert "#   111: Sandbox WhatsApp 111" in text and "#   222: Sandbox WhatsApp 222" in text
    assert 'phone_id = "123456789"    # REPLACE' in text


def test_a_request_past_its_deadline_is_unknown_and_reconcile_settles_it(make_sandbox,
                                                                        write_config,
                                                                        write_csv, invoke):
    """Issue 20 (item 9): a run stopped (SIGSTOP) past its deadline left a row unknown whose
    ticket exists; reconcile settles it as sent, with its contact. (Here the answer comes
    after the deadline: the same unknown, without stopping a process.)"""
    server = make_sandbox(latency=3.0)  # ten times the deadline: it always fires first
    config = write_config(server.url, api={"timeout_seconds": 0.3, "max_concurrency": 1})
    assert invoke("run", write_csv(people(1)), "--config", config).exit_code == 5
    server.state.wait_idle()
    assert len(server.state.tickets) == 1
    server.state.faults = Faults()
    settled = invoke("reconcile", "--out", "clientes-import", "--config", config)
    assert settled.exit_code == 0, settled.output
    row = read_results(Path("clientes-import"))[0]
    assert (row["status"], row["ai_contact_id"]) == ("sent", server.state.contacts[PHONES[0][1:]])


# ---------------------------------------------------------------- clocks (issue 20, item 2)


@pytest.mark.parametrize(("ours", "accounts"), [(-3600, 0), (3600, 0), (0, 3600), (0, -3600)],
                         ids=["machine-behind", "machine-ahead", "account-ahead",
                              "account-behind"])
def test_reconcile_judges_in_the_accounts_clock_whatever_the_skew(
        sandbox, write_config, write_csv, invoke, tmp_path, ours, accounts):
    """A clock an hour off on either side: processed requests are still settled sent, and an
    unprocessed one whose customer was already a contact (10 minutes before, in the account's
    time) stays unknown: compared directly, a machine an hour behind took it for sent."""
    sandbox.state.faults = Faults(clock_offset=accounts)
    config = write_config(sandbox.url)
    with use_clock(ShiftedClock(ours)):
        sandbox.state.faults = Faults(fail_500=1.0, latency=0.05, clock_offset=accounts)
        assert invoke("run", write_csv(people(2)), "--config", config,
                      "--out", "procesados").exit_code == 5
        sandbox.state.seed_contact(PHONES[2], created_at=sandbox.state.now() - 600)
        sandbox.state.faults = Faults(fail_500_unprocessed=1.0, clock_offset=accounts)
        assert invoke("run", write_csv(people(1, start=2), name="viejo.csv"), "--config",
                      config, "--out", "viejo").exit_code == 5
        sandbox.state.faults = Faults(clock_offset=accounts)
        for folder in ("procesados", "viejo"):
            invoke("reconcile", "--out", folder, "--config", config)
    processed = read_results(tmp_path / "procesados")
    assert [(r["status"], r["ai_contact_id"]) for r in processed] == [
        ("sent", sandbox.state.contacts[phone[1:]]) for phone in PHONES[:2]]
    [old] = read_results(tmp_path / "viejo")
    assert old["status"] == "unknown"
    assert old["error"].startswith("still unknown after reconcile: contact exists since")
    assert len(sandbox.state.tickets) == 2


def test_a_clock_set_between_sending_and_reconcile_leaves_the_row_unknown(
        sandbox, write_config, write_csv, invoke, tmp_path):
    """The skew recorded with the request and the skew now disagree by an hour: this
    machine's clock was set in between; the row stays unknown and says so."""
    sandbox.state.faults = Faults(fail_500=1.0, latency=0.05)
    config = write_config(sandbox.url)
    assert invoke("run", write_csv(people(1)), "--config", config).exit_code == 5
    sandbox.state.faults = Faults()
    with use_clock(ShiftedClock(-3600)):
        result = invoke("reconcile", "--out", "clientes-import", "--config", config)
    assert result.exit_code == 5
    [row] = read_results(tmp_path / "clientes-import")
    assert row["status"] == "unknown"
    assert re.fullmatch(
        r"still unknown after reconcile: the contact exists, and a clock was set since the"
        r" request was sent: the account's clock was 0\.\d{3} s (ahead of|behind) this"
        r" machine's then, and is 3[56]\d\d\.\d{3} s ahead of it now; compare by hand",
        row["error"]), row["error"]


def test_the_skew_is_bounded_by_date_headers_and_a_clock_set_starts_again():
    skew = ClockSkew()
    assert skew.bounds() is None
    skew.observe(100.2, 100.3, "Thu, 01 Jan 1970 00:01:40 GMT")  # 100 s: no skew seen yet
    assert skew.bounds() == pytest.approx((-0.3, 0.8))
    skew.observe(100.9, 101.0, "Thu, 01 Jan 1970 00:01:41 GMT")  # the second turned
    assert skew.bounds() == pytest.approx((0.0, 0.8)) and skew.epoch == 0
    skew.observe(5000.0, 5000.1, "Thu, 01 Jan 1970 00:01:42 GMT")  # our clock was set
    assert skew.epoch == 1 and skew.bounds() == pytest.approx((-4898.1, -4897.0))
    skew.observe(1.0, 2.0, "not a date")
    assert skew.samples == 3


def test_without_a_date_header_the_evidence_decides_nothing_but_absence():
    from importer.ledger import Unknown
    from importer.reconcile import skew_at_sending

    never = Unknown("k", "+56987654321", 1000.0, None, None, None)
    reason = skew_at_sending(never, None, 2000.0)
    contact = {"phone": "+56987654321", "id": "c1", "created_at": "2030-01-01T00:00:00Z"}
    verdict = judge("+56987654321", 1000.0, None, [contact], reason)
    assert (verdict.state, verdict.error) == ("unknown", (
        "still unknown after reconcile: the contact exists, and the account's clock cannot be"
        " compared with this machine's (its answers carry no Date header)"))
    assert judge("+56987654321", 1000.0, None, [], reason).state == "failed"


def test_dates_without_a_zone_are_utc_and_only_the_first_counts(monkeypatch):
    """Found by review: "-0000" and the asctime form parse without a zone, and were read in
    this machine's time zone (two hours off under UTC+2: a row taken for sent); two Date
    headers (a proxy adding its own) came joined."""
    import httpx2

    from importer.client import _date

    monkeypatch.setenv("TZ", "Etc/GMT-2")
    time.tzset()
    try:
        for header in ("Thu, 01 Jan 1970 00:01:40 -0000", "Thu Jan  1 00:01:40 1970",
                       "Thu, 01 Jan 1970 00:01:40 GMT"):
            skew = ClockSkew()
            skew.observe(100.2, 100.3, header)
            assert skew.bounds() == pytest.approx((-0.3, 0.8)), header
    finally:
        monkeypatch.undo()
        time.tzset()
    both = httpx2.Headers([("date", "Thu, 01 Jan 1970 00:01:40 GMT"),
                           ("date", "Thu, 01 Jan 1970 02:00:00 GMT")])
    assert _date(both) == "Thu, 01 Jan 1970 00:01:40 GMT"


def test_a_row_recorded_without_its_skew_is_never_judged_by_todays(sandbox, write_config):
    """Found by review: a row an earlier release recorded (no skew at sending) was judged by
    the skew measured now; from a machine an hour behind then, corrected since, a contact
    10 minutes old read as created after the request. Only the absence of any contact
    decides such a row."""
    from importer.ledger import Unknown
    from importer.reconcile import skew_at_sending

    old = Unknown("k", PHONES[0], 1000.0, None, None, None)
    reason = skew_at_sending(old, (-0.01, 0.01), 1000.0 + 3600)
    assert reason == ("it was recorded by an earlier release, without the clocks' skew at"
                      " sending: compare by hand")
    contact = {"phone": PHONES[0], "id": "c", "created_at": "1970-01-01T00:30:00Z"}
    assert judge(PHONES[0], 1000.0, None, [contact], reason).state == "unknown"
    assert judge(PHONES[0], 1000.0, None, [], reason).state == "failed"


def test_a_reconcile_stopped_midway_leaves_nothing_stuck(sandbox, write_config, write_csv,
                                                         invoke, tmp_path, monkeypatch):
    """Found by review: a reconcile stopped after its first verdict had written it to the
    ledger only; the journal kept the row unknown for good (the ledger had nothing left to
    settle, and --resume did not send it). The journal is written first now."""
    from importer import load_config
    from importer.client import VambeClient
    from importer.reconcile import reconcile_folder

    sandbox.state.faults = Faults(fail_500_unprocessed=1.0)
    config = write_config(sandbox.url)
    assert invoke("run", write_csv(people(2)), "--config", config).exit_code == 5
    sandbox.state.faults = Faults()
    out = tmp_path / "clientes-import"
    real_search = VambeClient.search_contacts
    searched = []

    async def search(client, phone, **options):
        searched.append(phone)
        if len(searched) == 2:
            raise KeyboardInterrupt  # Ctrl-C on the second look-up
        return await real_search(client, phone, **options)

    monkeypatch.setattr(VambeClient, "search_contacts", search)
    with pytest.raises(KeyboardInterrupt):
        reconcile_folder(out, load_config(config), api_key=DEFAULT_API_KEY)
    monkeypatch.setattr(VambeClient, "search_contacts", real_search)
    reconcile_folder(out, load_config(config), api_key=DEFAULT_API_KEY)
    assert [(r["status"], r["error_code"]) for r in read_results(out)] == [
        ("failed", "not_processed")] * 2
    assert invoke("run", write_csv(people(2)), "--config", config, "--resume").exit_code == 0
    assert len(sandbox.state.tickets) == 2


def test_an_identical_message_older_than_the_request_is_not_proof():
    """Issue 22 mutant (dropping ``last_at >= ...``): the customer's last message is the very
    text this row sends, but from a campaign a week earlier; the contact is older too. The
    account cannot say this request was processed: the row stays unknown, never ``sent``."""
    sent_at = 1_800_000_000.0
    week = 7 * 86400
    contact = {"id": "c-1", "phone": "+56 9 8765 4321",
               "created_at": "2026-11-01T10:00:00.000Z",
               "last_message_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                                time.gmtime(sent_at - week)),
               "last_message_content": "Hola Ana"}
    verdict = judge("+56987654321", sent_at, "Hola Ana", [contact], (0.0, 0.0))
    assert verdict.state == RequestState.UNKNOWN
    assert "is not ours" in verdict.error
    later = dict(contact, last_message_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                                        time.gmtime(sent_at + 2)))
    assert judge("+56987654321", sent_at, "Hola Ana", [later], (0.0, 0.0)).state \
        == RequestState.SENT
