"""`feedback_report`: acceptance and override rates per card topic, per service when the topic is unknown."""
from __future__ import annotations

import uuid

from cds_service.feedback import CardLog, feedback_report
from cds_service.storage import Database
from support import captured_logs
from feedback_helpers import PV, SERVICES, accepted, card, overridden


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
    assert "Total: 0 feedback item(s)" in report


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


def test_feedback_for_cards_that_were_not_logged_is_reported_per_service(db_url, client):
    client.post(f"/cds-services/{SERVICES[0]}/feedback", json={"feedback": [accepted(), overridden()]})
    client.post(f"/cds-services/{SERVICES[2]}/feedback", json={"feedback": [overridden()]})
    rows = table_rows(feedback_report(db_url))
    assert rows[f"(topic unknown) service {SERVICES[0]}"][2:6] == ["1", "1", "50%", "50%"]
    assert rows[f"(topic unknown) service {SERVICES[2]}"][2:6] == ["0", "1", "0%", "100%"]


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
