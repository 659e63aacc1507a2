"""`feedback_report`: acceptance and override rates per card topic, per service when the topic is unknown."""
from __future__ import annotations

import uuid

from cds_service.feedback.card_log import CardLog
from cds_service.feedback.report import feedback_report
from cds_service.storage import Database
from support import captured_logs
from feedback_helpers import PV, SERVICES, accepted, card, issue, overridden


def table_rows(report: str) -> dict[str, list[str]]:
    rows = {}
    for line in report.splitlines():
        if line.startswith("| ") and not line.startswith("| card topic"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_an_empty_database_gives_a_report_saying_so(db_url):
    report = feedback_report(db_url)
    assert "no feedback" in report
    assert "Total: 0 card(s) with feedback" in report


def test_rates_are_reported_per_logged_card_topic(db, db_url, client):
    regimen = [card("her2-next-regimen", indicator="info", suggestions=2) for _ in range(4)]
    safety = [card("anthracycline-her2-cardiotoxicity", indicator="critical") for _ in range(2)]
    CardLog(db).record(PV, str(uuid.uuid4()), regimen + safety)
    items = [accepted(c["uuid"], suggestions=[c["suggestions"][0]["uuid"]]) for c in regimen[:3]]
    items.append(overridden(regimen[3]["uuid"], code="patient-preference", display="Patient preference"))
    items += [overridden(c["uuid"], code="benefit-outweighs-risk", display="Benefit outweighs risk") for c in safety]
    assert client.post(f"/cds-services/{PV}/feedback", json={"feedback": items}).status_code == 200

    rows = table_rows(feedback_report(db_url))
    assert rows["her2-next-regimen"][:6] == ["4", "4", "3", "1", "75%", "25%"]
    assert rows["her2-next-regimen"][6] == "Patient preference (1)"
    assert rows["anthracycline-her2-cardiotoxicity"][:6] == ["2", "2", "0", "2", "0%", "100%"]
    assert rows["anthracycline-her2-cardiotoxicity"][6] == "Benefit outweighs risk (2)"


def test_cards_logged_without_a_topic_are_reported_per_service(db, db_url, client):
    items = [accepted(), overridden()]
    issue(db, items, service=SERVICES[0], topic=None)
    assert client.post(f"/cds-services/{SERVICES[0]}/feedback", json={"feedback": items}).status_code == 200
    rows = table_rows(feedback_report(db_url))
    assert rows[f"(topic unknown) service {SERVICES[0]}"][:6] == ["2", "2", "1", "1", "50%", "50%"]


def test_the_last_outcome_of_a_card_wins(db, db_url, client):
    """Accepted at 10:00, overridden at 10:05 (sent first): one card, overridden; not two outcomes."""
    issued = card("her2-next-regimen", suggestions=1)
    CardLog(db).record(PV, None, [issued])
    later = overridden(issued["uuid"], ts="2026-12-01T10:05:00Z", code="patient-preference", display="Patient preference")
    earlier = accepted(issued["uuid"], suggestions=[issued["suggestions"][0]["uuid"]], ts="2026-12-01T10:00:00Z")
    for item in (later, earlier):
        assert client.post(f"/cds-services/{PV}/feedback", json={"feedback": [item]}).status_code == 200
    assert table_rows(feedback_report(db_url))["her2-next-regimen"][:7] == [
        "1", "1", "0", "1", "0%", "100%", "Patient preference (1)"]


def test_feedback_rows_whose_card_is_not_logged_are_not_counted(db, db_url):
    """Rows stored before cards were checked (or whose card was purged) do not count."""
    from cds_service.feedback.store import FeedbackItem, FeedbackStore
    FeedbackStore(db).save([FeedbackItem.from_json(PV, None, overridden())])
    assert "Total: 0 card(s) with feedback" in feedback_report(db_url)


def test_issued_cards_without_feedback_show_up_with_no_rate(db, db_url):
    CardLog(db).record(PV, None, [card("ild-pneumonitis")])
    assert table_rows(feedback_report(db_url))["ild-pneumonitis"][:6] == ["1", "0", "0", "0", "-", "-"]


def test_logging_cards_never_raises_when_the_database_fails(tmp_path, caplog):
    broken = Database(f"sqlite:///{tmp_path / 'never-created.sqlite3'}")   # no tables
    with captured_logs(caplog, "her2cds.feedback"):
        assert CardLog(broken).record(PV, None, [card("her2-next-regimen")]) == 0
    assert "could not record" in caplog.text


def test_logging_the_same_card_twice_keeps_one_row(db, db_url):
    issued = card("her2-next-regimen")
    CardLog(db).record(PV, None, [issued])
    CardLog(db).record(PV, None, [issued])
    assert table_rows(feedback_report(db_url))["her2-next-regimen"][0] == "1"
