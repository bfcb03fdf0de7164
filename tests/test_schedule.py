"""Send windows ([schedule]): a row goes only while its window is open in every one of its
time zones, else it is skipped or waited for; --start-at. In virtual time (importer/schedule.py)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from importer.config import ScheduleSettings
from importer.schedule import SendWindow
from importer.timing import FakeClock, use_clock

from .conftest import read_results, start_run

FRIDAY_NOON = datetime(2027, 1, 15, 12, 0, tzinfo=UTC).timestamp()
CHILE, MEXICO, SPAIN = "+56987654321", "+525512345678", "+34612345678"
WORLD = [["Nombre", "Teléfono", "Correo"], ["Ana", CHILE, ""], ["Luis", MEXICO, ""],
         ["Eva", SPAIN, ""]]
WINDOW = {"hours": "09:00-20:00", "timezone": "America/Santiago"}


def _at(moment: float) -> FakeClock:
    return FakeClock(start=1000.0, wall=moment)


def test_rows_outside_their_window_are_skipped_and_resume_sends_them(sandbox, write_config,
                                                                     write_csv, invoke,
                                                                     tmp_path):
    """At 12:00 UTC Chile and Spain are open, Mexico City (06:00) is not: it is skipped,
    saying when its window opens in its own time and in UTC; --resume then sends it."""
    config = write_config(sandbox.url, schedule=WINDOW)
    source = write_csv(WORLD)
    with use_clock(_at(FRIDAY_NOON)):
        first = invoke("run", source, "--config", config)
    assert first.exit_code == 5
    rows = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error_code"]) for r in rows] == [
        ("sent", ""), ("skipped", "outside_window"), ("sent", "")]
    assert rows[1]["error"] == (
        "not sent: outside the send window ([schedule]); it opens 2027-01-15 09:00"
        " America/Mexico_City (2027-01-15 15:00 UTC); --resume (or --wait) sends it then")
    with use_clock(_at(FRIDAY_NOON + 3.5 * 3600)):
        assert invoke("run", source, "--config", config, "--resume").exit_code == 0
    assert sorted(b["to_phone_number"] for b in sandbox.state.ticket_bodies()) == sorted(
        [CHILE, MEXICO, SPAIN])


def test_wait_sends_each_row_when_its_window_opens(sandbox, write_config, write_csv, invoke,
                                                   tmp_path):
    """--wait keeps going: Chile and Spain now, Mexico at 15:00 UTC (virtual time)."""
    clock = _at(FRIDAY_NOON)
    config = write_config(sandbox.url, schedule=WINDOW)
    with use_clock(clock):
        result = invoke("run", write_csv(WORLD), "--config", config, "--wait")
    assert result.exit_code == 0, result.output
    assert ("Waiting for send windows: 1 rows; the next opens 2027-01-15 09:00"
            " America/Mexico_City (2027-01-15 15:00 UTC)") in result.stderr
    assert clock.time() >= FRIDAY_NOON + 3 * 3600
    assert len(sandbox.state.tickets) == 3


def test_days_and_several_zones_must_all_be_open(sandbox, write_config, write_csv, invoke,
                                                 tmp_path):
    """A weekday-only window on a Saturday opens on Monday; Spain's mobiles have two zones
    (Madrid, Canary Islands) and are sent only when both are open."""
    saturday = FRIDAY_NOON + 86400
    config = write_config(sandbox.url, schedule={**WINDOW, "days": ["mon", "tue", "wed",
                                                                     "thu", "fri"]})
    with use_clock(_at(saturday)):
        invoke("run", write_csv(WORLD), "--config", config)
    rows = read_results(tmp_path / "clientes-import")
    assert {r["status"] for r in rows} == {"skipped"}
    assert "it opens 2027-01-18 09:00 America/Santiago" in rows[0]["error"]
    late = {**WINDOW, "hours": "08:00-20:30"}
    at_1945_utc = datetime(2027, 1, 15, 19, 45, tzinfo=UTC).timestamp()
    with use_clock(_at(at_1945_utc)):  # 20:45 in Madrid (closed), 19:45 in the Canaries
        invoke("run", write_csv(WORLD[:1] + WORLD[3:], name="es.csv"), "--config",
               write_config(sandbox.url, name="late.toml", schedule=late))
    assert read_results(tmp_path / "es-import")[0]["error_code"] == "outside_window"


def test_a_window_two_zones_never_share_says_so_and_what_to_do(sandbox, write_config,
                                                              write_csv, invoke, tmp_path):
    """Issue 20, item 8: 09:00-09:30 in Madrid and in the Canary Islands never overlap: the
    row is skipped saying the window never opens in both zones and what to change, not "it
    opens no time ... --resume sends it then"; validate counts it apart; --wait does not wait."""
    config = write_config(sandbox.url, schedule={"hours": "09:00-09:30",
                                                 "timezone": "America/Santiago"})
    source = write_csv(WORLD[:1] + WORLD[3:], name="es.csv")
    with use_clock(_at(FRIDAY_NOON)):
        checked = invoke("validate", source, "--config", config, "--out", "revisado")
        sent = invoke("run", source, "--config", config, "--wait")
    assert ("0 of the 1 valid rows are inside their send window now ([schedule]); 1 never"
            " have it open in all of their time zones at once within a week (widen [schedule]"
            " hours or days)") in checked.stdout
    [row] = read_results(tmp_path / "es-import")
    assert (row["status"], row["error_code"]) == ("skipped", "outside_window")
    assert row["error"] == (
        "not sent: its send window ([schedule]) is never open in all of its time zones at"
        " once (Atlantic/Canary, Europe/Madrid) within a week; widen [schedule] hours or days,"
        " or send it without [schedule]")
    assert sent.exit_code == 5 and sandbox.state.tickets == []


def test_start_at_waits_before_the_first_request(sandbox, write_config, write_csv, invoke,
                                                 tmp_path):
    """--start-at holds every request until then (in virtual time) and says so."""
    clock = _at(FRIDAY_NOON)
    config = write_config(sandbox.url)
    with use_clock(clock):
        result = invoke("run", write_csv(WORLD), "--config", config,
                        "--start-at", "2027-01-15T12:30:00+00:00")
    assert result.exit_code == 0, result.output
    assert "Waiting until 2027-01-15 12:30 UTC to start (--start-at)" in result.stderr
    assert clock.time() >= FRIDAY_NOON + 1800
    bad = invoke("run", write_csv(WORLD), "--config", config, "--start-at", "mañana")
    assert bad.exit_code == 2 and "not an ISO 8601 time" in bad.stderr


def test_validate_says_how_many_rows_are_inside_their_window(write_config, write_csv, invoke):
    """validate counts the rows inside their window now and says when the rest open."""
    with use_clock(_at(FRIDAY_NOON)):
        result = invoke("validate", write_csv(WORLD), "--config",
                        write_config(schedule=WINDOW), api_key=None)
    assert ("Note: 2 of the 3 valid rows are inside their send window now ([schedule]); the"
            " other 1 open from 2027-01-15 09:00 America/Mexico_City (2027-01-15 15:00 UTC)"
            ) in result.stdout


def test_ctrl_c_while_waiting_for_a_window_stops_at_once(sandbox, write_config, write_csv,
                                                         tmp_path):
    """A run waiting hours for a window ends on the first Ctrl-C, with its reports."""
    santiago_now = datetime.now(timezone(timedelta(hours=-3)))  # a bound, not exact: fine
    opens = (santiago_now + timedelta(hours=3)).strftime("%H:00")
    closes = (santiago_now + timedelta(hours=5)).strftime("%H:00")
    config = write_config(sandbox.url, schedule={"hours": f"{opens}-{closes}",
                                                 "timezone": "America/Santiago"})
    out = tmp_path / "out"
    process = start_run(config, write_csv(WORLD[:2]), "--out", out, "--wait")
    while "Waiting for send windows" not in (line := process.stderr.readline()):
        assert line, process.communicate()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    [row] = read_results(out)
    # issue 21, item 8: it was not_attempted, its opening time lost
    assert (row["status"], row["error_code"]) == ("skipped", "outside_window")
    assert row["error"].startswith("not sent: outside the send window ([schedule]); it opens ")
    assert sandbox.state.tickets == []


# ---------------------------------------------------------------- across midnight

GERMANY = "+4915123456789"  # one zone, Europe/Berlin
NIGHT = {"hours": "22:00-06:00", "timezone": "America/Santiago"}


def test_a_window_across_midnight_is_open_on_both_sides_of_it(sandbox, write_config,
                                                              write_csv, invoke, tmp_path):
    """22:00-06:00 at 05:00 UTC: 02:00 in Santiago (the window opened the evening before) and
    23:00 in Mexico City are inside it; 06:00 in Berlin is its end, outside, and the row says
    it opens at 22:00 that evening; --resume then sends it."""
    rows = [["Nombre", "Teléfono", "Correo"], ["Ana", CHILE, ""], ["Luis", MEXICO, ""],
            ["Jonas", GERMANY, ""]]
    config, source = write_config(sandbox.url, schedule=NIGHT), write_csv(rows)
    with use_clock(_at(datetime(2027, 1, 16, 5, 0, tzinfo=UTC).timestamp())):
        first = invoke("run", source, "--config", config)
    assert first.exit_code == 5, first.output
    results = read_results(tmp_path / "clientes-import")
    assert [(r["phone"], r["status"]) for r in results] == [
        (CHILE, "sent"), (MEXICO, "sent"), (GERMANY, "skipped")]
    assert results[2]["error"] == (
        "not sent: outside the send window ([schedule]); it opens 2027-01-16 22:00"
        " Europe/Berlin (2027-01-16 21:00 UTC); --resume (or --wait) sends it then")
    with use_clock(_at(datetime(2027, 1, 16, 21, 30, tzinfo=UTC).timestamp())):
        assert invoke("run", source, "--config", config, "--resume").exit_code == 0
    assert sorted(b["to_phone_number"] for b in sandbox.state.ticket_bodies()) == sorted(
        [CHILE, MEXICO, GERMANY])


def test_the_days_of_a_window_across_midnight_are_the_days_it_opens():
    """Friday's 22:00-02:00 runs into Saturday: open at 01:00 on Saturday, closed at 23:00
    (next open the Friday after), and on Friday evening it opens at 22:00."""
    window = SendWindow(ScheduleSettings(hours="22:00-02:00", days=["fri"],
                                         timezone="America/Santiago"))

    def berlin(day: int, hour: int) -> float:
        return datetime(2027, 1, day, hour, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()

    assert window.opens_at(GERMANY, berlin(16, 1)) is None  # Saturday 01:00
    assert window.describe_opening(GERMANY, window.opens_at(GERMANY, berlin(16, 23))) == (
        "2027-01-22 22:00 Europe/Berlin (2027-01-22 21:00 UTC)")
    assert window.describe_opening(GERMANY, window.opens_at(GERMANY, berlin(15, 21))) == (
        "2027-01-15 22:00 Europe/Berlin (2027-01-15 21:00 UTC)")


def test_a_night_window_ends_at_its_local_hour_when_clocks_go_forward(sandbox, write_config,
                                                                      write_csv, invoke,
                                                                      tmp_path):
    """On 2027-03-28 Berlin's clocks go from 02:00 to 03:00. At 06:30 there the window
    22:00-06:00 is over: nobody is messaged, and the row says when it opens again."""
    at_0630_berlin = datetime(2027, 3, 28, 4, 30, tzinfo=UTC).timestamp()
    with use_clock(_at(at_0630_berlin)):
        invoke("run", write_csv([["Nombre", "Teléfono", "Correo"], ["Jonas", GERMANY, ""]]),
               "--config", write_config(sandbox.url, schedule=NIGHT))
    assert sandbox.state.tickets == []
    [row] = read_results(tmp_path / "clientes-import")
    assert (row["status"], row["error_code"]) == ("skipped", "outside_window")
    assert "it opens 2027-03-28 22:00 Europe/Berlin" in row["error"]
