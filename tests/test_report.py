"""Renderers, from the checked-in audit result fixture (tests/data/audit_result.json).

The fixture is shaped like the audit engine's output for the applayering ruleset (its
rules are the ruleset's, except that appliance-agent-commands is marked mutual TLS so that
mtls_not_observed has a rule to cite). It has a finding of every kind, a missing flow and
an unknown host without destination, an IPv6 host, an unreadable and a truncated capture,
and strings from the wire that try to break each format: ``<script>``, ``|``, quotes, a
right-to-left override.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from screenshots import CHROMIUM, png_pixels, screenshot

from auditor.report import FORMATS, csv_, markdown, render, sarif, table
from auditor.report import _common as common
from auditor.rules import FINDING_KINDS as KINDS

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "audit_result.json"
SARIF_SCHEMA = DATA / "sarif-2.1.0-schema.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def result() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _finding(result: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(f for f in result["findings"] if f["kind"] == kind)


# --- the fixture and the entry point ------------------------------------------------


def test_fixture_covers_every_kind_and_hostile_strings(result: dict[str, Any]) -> None:
    kinds = {f["kind"] for f in result["findings"]}
    assert kinds == set(KINDS)
    missing = _finding(result, "missing_flow")
    assert missing["src_ip"] is None and missing["dst_ip"] is None
    text = FIXTURE.read_text(encoding="utf-8")
    for hostile in ("<script>", "|", '">', "\u202e"):
        assert hostile in text
    assert result["summary"]["findings"] == len(result["findings"])


def test_formats() -> None:
    assert FORMATS == ("table", "json", "sarif", "html", "csv", "markdown")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_text_and_leaves_the_result_alone(
    result: dict[str, Any], fmt: str
) -> None:
    before = copy.deepcopy(result)
    out = render(result, fmt)
    assert isinstance(out, str) and out.endswith("\n") and len(out) > 200
    assert result == before
    assert render(result, fmt) == out  # deterministic


def test_unknown_format_names_the_known_ones(result: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"unknown report format 'pdf'.*table, json, sarif"):
        render(result, "pdf")


ODD_RESULTS: list[dict[str, Any]] = [
    {},
    {"findings": [], "captures": [], "roles": [], "role_pairs": []},
    {
        "tool": {"name": "pcap-audit", "version": "0.1.0"},
        "summary": {"exit_code": 0},
        "findings": [{"kind": "brand_new_kind", "severity": "critical", "rule_id": "r9"}],
        "role_pairs": [{"src_role": None, "dst_role": "x", "proto": "icmp", "dst_port": None}],
        "roles": [{"ip": "10.0.0.1", "confidence": "n/a"}],
        "captures": [{"path": "/abs/a b.pcap", "first_seen": "not a time"}],
    },
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("odd", ODD_RESULTS, ids=["empty", "no-findings", "unknowns"])
def test_sparse_or_unexpected_results_render_without_error(odd: dict[str, Any], fmt: str) -> None:
    out = render(odd, fmt)
    assert out.endswith("\n")


@pytest.mark.parametrize("fmt", ["table", "html", "markdown"])
def test_no_findings_is_said_plainly(fmt: str) -> None:
    assert "No findings." in render({"findings": []}, fmt)


# --- shared helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finding", "label"),
    [
        ({"src_ip": "10.0.0.5", "dst_ip": "10.0.0.9", "dst_port": 3009, "proto": "tcp"},
         "10.0.0.5 -> 10.0.0.9:3009/tcp"),
        ({"src_ip": "fd00::1", "dst_ip": "fd00::2", "dst_port": 443, "proto": "TCP"},
         "[fd00::1] -> [fd00::2]:443/tcp"),
        ({"src_ip": None, "dst_ip": None, "src_role": "agent", "dst_role": "appliance",
          "dst_port": 8787, "proto": "tcp"}, "agent -> appliance:8787/tcp"),
        ({"src_ip": "10.0.0.5", "dst_ip": "10.0.0.9", "dst_port": None, "proto": "icmp"},
         "10.0.0.5 -> 10.0.0.9 (icmp)"),
        ({"src_ip": "fd00::77", "dst_ip": None, "dst_port": None, "proto": None}, "fd00::77"),
    ],
)  # fmt: skip
def test_flow_label(finding: dict[str, Any], label: str) -> None:
    assert common.flow_label(finding) == label


def test_printable_shows_controls_and_bidi_overrides() -> None:
    assert common.printable("a\x1b[2Jb\u202ec\nd") == "a\\x1b[2Jb\\u202ec\\x0ad"
    assert common.printable("a\nb", keep_newlines=True) == "a\nb"
    assert common.printable(None) == ""


def test_role_matrix_marks_undocumented_and_unseen(result: dict[str, Any]) -> None:
    ranges = [
        {"src_role": "admin", "dst_role": "appliance", "proto": "tcp", "dst_port": 3700,
         "port_hi": 3716, "documented": True, "observed": False},
        {"src_role": "admin", "dst_role": "appliance", "proto": "tcp", "dst_port": 3801,
         "port_hi": 3816, "documented": True, "observed": True, "flows": 1},
    ]  # fmt: skip
    matrix = common.role_matrix([*result["role_pairs"], *ranges])
    assert matrix.rows == ["admin", "agent", "appliance", "hyperv_agent", "pvs_agent"]
    statuses = {c.label: c.status for c in matrix.cell("admin", "appliance")}
    assert {k: statuses[k] for k in ("22/tcp", "80/tcp", "443/tcp", "3009/tcp", "8161/tcp")} == {
        "22/tcp": "unseen",
        "80/tcp": "unseen",
        "443/tcp": "ok",
        "3009/tcp": "ok",
        "8161/tcp": "undocumented",
    }
    assert statuses["3700-3716/tcp"] == "unseen"  # a documented range nobody used
    assert statuses["3801/tcp"] == "ok"  # the port seen inside a documented range
    ports = [c.port for c in matrix.cell("admin", "appliance")]
    assert ports == sorted(ports)
    assert matrix.cell("active_directory", "agent") == []
    with_unknown = common.role_matrix([*result["role_pairs"], {"src_role": None, "dst_role": "x"}])
    assert with_unknown.rows[-1] == "?"  # hosts without a role come last


# --- json -----------------------------------------------------------------------------


def test_json_is_the_result_itself_in_its_key_order(result: dict[str, Any]) -> None:
    out = render(result, "json")
    back = json.loads(out)
    assert back == result
    assert list(back) == list(result)
    assert list(back["findings"][0]) == list(result["findings"][0])
    assert out.startswith('{\n  "tool": {\n    "name"')
    assert "\u2013" in out and "\\u2013" not in out  # ensure_ascii=False
    assert out.endswith("}\n")


# --- sarif ----------------------------------------------------------------------------


def _sarif(result: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(render(result, "sarif"))
    return doc


def test_sarif_validates_against_the_official_schema(result: dict[str, Any]) -> None:
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    doc = _sarif(result)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    # The schema is strict enough to catch a wrong level or a missing tool.
    doc["runs"][0]["results"][0]["level"] = "severe"
    del doc["runs"][0]["tool"]
    assert len(list(validator.iter_errors(doc))) == 2


def test_sarif_run_tool_and_rules(result: dict[str, Any]) -> None:
    doc = _sarif(result)
    assert doc["version"] == "2.1.0"
    assert doc["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("pcap-audit", "0.1.0")
    assert urlsplit(driver["informationUri"]).scheme == "https"
    rules = {r["id"]: r for r in driver["rules"]}
    cited = {f["rule_id"] for f in result["findings"] if f["rule_id"]}
    uncited = {r["id"] for r in result["ruleset"]["rules"]} - cited
    assert cited <= set(rules) and not uncited & set(rules)
    soap = rules["appliance-agent-commands"]
    vendor = next(r for r in result["ruleset"]["rules"] if r["id"] == soap["id"])["source"]
    assert soap["fullDescription"]["text"] == vendor["text"]
    assert soap["properties"]["document"] == vendor["document"]
    assert soap["properties"]["section"] == vendor["section"]
    # the most severe finding citing a rule sets its default level
    assert soap["defaultConfiguration"]["level"] == "warning"
    assert rules["pvs-agent-disk-download-http"]["defaultConfiguration"]["level"] == "error"
    assert rules["agent-registration"]["defaultConfiguration"]["level"] == "error"  # high+medium
    # kinds whose findings cite no rule get a rule of their own
    assert {"pcap-audit/unexpected_port", "pcap-audit/unknown_host"} <= set(rules)
    assert rules["pcap-audit/unexpected_port"]["defaultConfiguration"]["level"] == "note"
    assert len(rules) == len(driver["rules"])  # no rule twice
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]


def test_sarif_results(result: dict[str, Any]) -> None:
    run = _sarif(result)["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len(run["results"]) == len(result["findings"])
    levels = {"high": "error", "medium": "warning", "low": "note", "info": "note"}
    for finding, res in zip(result["findings"], run["results"], strict=True):
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["ruleId"] == (finding["rule_id"] or f"pcap-audit/{finding['kind']}")
        assert res["level"] == levels[finding["severity"]]
        assert res["message"]["text"] == finding["message"]
        assert res["partialFingerprints"] == {"pcapAuditFindingId/v1": finding["id"]}
        props = res["properties"]
        assert props["severity"] == finding["severity"]
        assert props["evidence"] == finding["evidence"]
        assert props["flow_ids"] == finding["flow_ids"]
        assert props["community_ids"] == finding["community_ids"]
        (location,) = res["locations"]
        uri = location["physicalLocation"]["artifactLocation"]["uri"]
        assert uri != "captures/site-a/notes.txt"  # the unreadable capture holds nothing
        assert location["logicalLocations"][0]["name"] == common.flow_label(finding)
    by_id = {r["partialFingerprints"]["pcapAuditFindingId/v1"]: r for r in run["results"]}
    missing = by_id[_finding(result, "missing_flow")["id"]]
    name = missing["locations"][0]["logicalLocations"][0]["name"]
    assert name == "appliance -> file_server:445/tcp"
    # seen before the second capture started: only in the first one
    weak = by_id[_finding(result, "weak_tls")["id"]]
    assert "relatedLocations" not in weak
    assert weak["locations"][0]["physicalLocation"]["artifactLocation"]["index"] == 0


def test_sarif_fingerprint_survives_changed_counts_and_message(result: dict[str, Any]) -> None:
    before = _sarif(result)["runs"][0]["results"][0]["partialFingerprints"]
    result["findings"][0]["packets"] += 1000
    result["findings"][0]["message"] = "Reworded."
    assert _sarif(result)["runs"][0]["results"][0]["partialFingerprints"] == before


def test_sarif_artifacts_and_invocation(result: dict[str, Any]) -> None:
    run = _sarif(result)["runs"][0]
    uris = [a["location"]["uri"] for a in run["artifacts"]]
    assert uris == [
        "captures/site-a/elm01-2024-05-14.pcapng",
        "captures/site-a/hv01%20span%20port.pcap.gz",
        "captures/site-a/notes.txt",
    ]
    for uri in uris:
        assert not re.search(r"\s", uri) and urlsplit(uri).scheme == ""
    assert all(a["roles"] == ["analysisTarget"] for a in run["artifacts"])
    assert run["artifacts"][0]["mimeType"] == "application/x-pcapng"
    (invocation,) = run["invocations"]
    assert invocation["exitCode"] == 5 and invocation["executionSuccessful"] is False
    notes = invocation["toolExecutionNotifications"]
    errors = [n for n in notes if n["level"] == "error"]
    assert errors[0]["message"]["text"] == (
        "captures/site-a/notes.txt: byte 0: not a pcap or pcapng file (magic 3c68746d)"
    )
    assert len(errors) == 1
    warnings = [n["message"]["text"] for n in notes if n["level"] == "warning"]
    assert any("hv01" in w and "at byte 70233984" in w for w in warnings)  # truncated
    assert any("gzip stream ends early" in w for w in warnings)  # reader warning
    assert run["automationDetails"]["id"] == "pcap-audit/applayering/"


@pytest.mark.parametrize(
    ("exit_code", "ok"), [(0, True), (1, True), (2, False), (4, False), (5, False), (16, False)]
)
def test_sarif_execution_successful(result: dict[str, Any], exit_code: int, ok: bool) -> None:
    result["summary"]["exit_code"] = exit_code
    invocation = _sarif(result)["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is ok and invocation["exitCode"] == exit_code


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("captures/a.pcap", "captures/a.pcap"),
        ("site a/b#1.pcap", "site%20a/b%231.pcap"),
        ("/var/cap/x y.pcapng", "file:///var/cap/x%20y.pcapng"),
        ("C:\\caps\\a.pcap", "file:///C:/caps/a.pcap"),
        ("-", "-"),
    ],
)
def test_capture_uri(path: str, uri: str) -> None:
    assert sarif.capture_uri(path) == uri


# --- html -----------------------------------------------------------------------------

_VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "source"}


class _Page(HTMLParser):
    """Collects tags, attributes and text; checks that elements nest properly."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_class(self, cls: str) -> list[dict[str, str | None]]:
        return [a for _, a in self.tags if cls in (a.get("class") or "").split()]


def _page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def test_html_structure(result: dict[str, Any]) -> None:
    html = render(result, "html")
    assert html.startswith("<!DOCTYPE html>")
    page = _page(html)
    assert not page.errors and not page.stack
    ids = {a.get("id") for _, a in page.tags}
    assert {"summary", "captures", "findings", "matrix", "roles"} <= ids
    findings = result["findings"]
    assert len(page.with_class("finding")) == len(findings)
    for finding in findings:
        assert f"finding-{finding['id']}" in ids
    with_evidence = [f for f in findings if f["evidence"] or f["flow_ids"]]
    assert sum(1 for t, _ in page.tags if t == "details") == len(with_evidence)
    quoted = [f for f in findings if f["source"]]
    assert len(page.with_class("vendor")) == len(quoted)
    # findings grouped by severity, in severity order
    headings = [a["class"] for t, a in page.tags if t == "h3" and "sev-" in (a.get("class") or "")]
    assert headings == ["sev-high", "sev-medium", "sev-low", "sev-info"]
    roles_rows = html.split('id="roles"')[1].count("<tr>") - 1  # minus the header row
    assert roles_rows == len(result["roles"])
    assert sum(1 for t, _ in page.tags if t == "svg") == 1


def test_html_quotes_the_vendor_with_document_and_section(result: dict[str, Any]) -> None:
    page = _page(render(result, "html"))
    text = "".join(page.text)
    source = _finding(result, "plaintext_disk_transfer")["source"]
    assert source["text"] in text
    assert f"{source['document']}, section \u201c{source['section']}\u201d" in text


def test_html_is_self_contained(result: dict[str, Any]) -> None:
    html = render(result, "html")
    page = _page(html)
    tags = {t for t, _ in page.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base", "form"}
    for tag, attrs in page.tags:
        for name in ("src", "href", "action", "xlink:href", "srcset"):
            assert name not in attrs, (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
    assert "@import" not in html and "url(" not in html
    csp = next(a for t, a in page.tags if t == "meta" and a.get("http-equiv"))
    assert "default-src 'none'" in (csp.get("content") or "")


def test_html_escapes_wire_strings(result: dict[str, Any]) -> None:
    html = render(result, "html")
    assert "<script" not in html and "<img" not in html and "<b>dc01" not in html
    assert "&lt;script&gt;alert(&#x27;host&#x27;)&lt;/script&gt;" in html
    assert "&lt;b&gt;dc01&lt;/b&gt;.corp.example" in html
    assert "\u202e" not in html and "\\u202e" in html
    text = "".join(_page(html).text)
    assert "<script>alert('host')</script>" in text  # shown as text, intact
    assert '"><img src=x onerror=alert(1)>' in text


def test_html_escapes_hostile_attribute_values(result: dict[str, Any]) -> None:
    result["findings"][0]["id"] = 'x" onmouseover="alert(1)'
    result["findings"][0]["severity"] = 'high" style="x'
    result["role_pairs"][0]["rule_ids"] = ['r" onclick="alert(1)']
    page = _page(render(result, "html"))
    assert not page.errors
    for _, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs), attrs
        assert re.fullmatch(r"width:\d+%", attrs.get("style") or "width:0%"), attrs


def test_html_role_matrix(result: dict[str, Any]) -> None:
    html = render(result, "html")
    matrix = html.split('<table class="matrix">')[1].split("</table>")[0]
    ports = re.findall(r'<span class="port (\w+)" title="[^"]*">([^<]*)</span>', matrix)
    pairs = result["role_pairs"]
    assert len(ports) == len(pairs)
    assert ("undocumented", "8161/tcp") in ports and ("undocumented", "3260/tcp") in ports
    assert ("unseen", "8787/tcp") in ports and ("unseen", "3509/tcp") in ports
    assert ("ok", "8016/tcp") in ports and ("ok", "53/udp") in ports
    assert ("unseen", "445/tcp") in ports  # the missing flow
    undocumented = sum(1 for p in pairs if p["observed"] and not p["documented"])
    assert sum(1 for status, _ in ports if status == "undocumented") == undocumented
    result["role_pairs"].append(
        {
            "src_role": None,
            "dst_role": "appliance",
            "proto": "tcp",
            "dst_port": 22,
            "documented": False,
            "observed": True,
        }
    )
    assert '<th scope="row"><span class="alert">no role</span></th>' in render(result, "html")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_html_renders_in_headless_chromium(result: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(result, "html"), encoding="utf-8")
    png = screenshot(page, tmp_path, 1280, 2000)
    assert len(png) > 20_000
    width, height, pixels = png_pixels(png)
    assert (width, height) == (1280, 2000)
    # a blank page compresses to a few kB and has a handful of distinct byte values
    assert len(set(pixels[::101])) > 50


# --- table ----------------------------------------------------------------------------


@pytest.mark.parametrize("width", [100, 80])
def test_table_fits_the_width_without_colour(result: dict[str, Any], width: int) -> None:
    out = table.render(result, color=False, width=width)
    assert "\x1b" not in out
    too_long = [line for line in out.splitlines() if len(line) > width]
    assert not too_long


def test_table_groups_by_severity_and_ends_with_a_summary(result: dict[str, Any]) -> None:
    out = render(result, "table")
    positions = [out.index(f"\n{s} (") for s in ("HIGH", "MEDIUM", "LOW", "INFO")]
    assert positions == sorted(positions)
    last = out.rstrip("\n").splitlines()[-1]
    assert last == "11 findings: 3 high, 4 medium, 1 low, 3 info | exit code 5 (fail on medium)"
    for finding in result["findings"]:
        assert finding["id"] in out
    assert "notes.txt: byte 0: not a pcap or pcapng file" in out  # the unreadable capture


def test_table_colour_only_adds_escapes(result: dict[str, Any]) -> None:
    plain = table.render(result, color=False)
    coloured = table.render(result, color=True)
    assert "\x1b[" in coloured
    assert ANSI.sub("", coloured) == plain
    assert render(result, "table", color=True) == coloured


def test_table_wraps_long_messages_and_tokens(result: dict[str, Any]) -> None:
    finding = result["findings"][0]
    finding["message"] = "A very long message about the flow. " * 12
    finding["evidence"]["http_uri"] = "/" + "x" * 250
    out = table.render(result, color=False)
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "A very long message" in out


def test_table_neutralises_terminal_escapes_from_the_wire(result: dict[str, Any]) -> None:
    result["findings"][0]["evidence"]["user_agent"] = "x\x1b]0;pwned\x07\x1b[2J\x9b31m"
    plain = table.render(result, color=False)
    assert "\x1b" not in plain and "\x07" not in plain and "\x9b" not in plain
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in plain
    coloured = table.render(result, color=True)
    assert "\x1b" not in ANSI.sub("", coloured)  # every ESC left is one of our colours


# --- csv ------------------------------------------------------------------------------


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_one_row_per_finding(result: dict[str, Any]) -> None:
    out = render(result, "csv")
    assert out.splitlines()[0] == ",".join(csv_.COLUMNS)
    rows = _rows(out)
    problems = rows[len(result["findings"]) :]
    rows = rows[: len(result["findings"])]
    # then the capture problems: the cut gzip capture's warning and the unreadable file
    assert [(r["kind"], r["id"], r["severity"]) for r in problems] == [
        ("capture_warning", "", ""),
        ("capture_error", "", ""),
    ]
    assert problems[0]["message"].endswith(
        "gzip stream ends early at byte 70233984 of the uncompressed data"
    )
    assert problems[1]["message"].startswith("captures/site-a/notes.txt:byte 0: not a pcap")
    assert json.loads(problems[1]["evidence"])["path"] == "captures/site-a/notes.txt"
    for row, finding in zip(rows, result["findings"], strict=True):
        assert row["id"] == finding["id"]
        assert row["severity"] == finding["severity"]
        assert json.loads(row["evidence"]) == finding["evidence"]
        assert row["flow_ids"].split(";") == [str(x) for x in finding["flow_ids"]] or (
            row["flow_ids"] == "" and not finding["flow_ids"]
        )
        assert row["community_ids"] == ";".join(finding["community_ids"])
        assert row["source_text"] == ((finding["source"] or {}).get("text") or "")
    missing = next(r for r in rows if r["kind"] == "missing_flow")
    assert missing["src_ip"] == "" and missing["dst_ip"] == "" and missing["first_seen"] == ""


def test_csv_survives_newlines_quotes_and_formulas(result: dict[str, Any]) -> None:
    result["findings"][0]["message"] = 'line one,\nline "two"'
    result["findings"][1]["message"] = '=HYPERLINK("http://x","y")'
    result["findings"][2]["src_role"] = "@SUM(A1)"
    rows = _rows(render(result, "csv"))
    assert len(rows) == len(result["findings"]) + 2  # and two capture problems
    assert rows[0]["message"] == 'line one,\nline "two"'
    assert rows[1]["message"] == '\'=HYPERLINK("http://x","y")'
    assert rows[2]["src_role"] == "'@SUM(A1)"


# --- markdown -------------------------------------------------------------------------

UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _findings_table(text: str) -> list[str]:
    section = text.split("## Findings")[1].split("## Details")[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_markdown_table_has_one_row_per_finding_and_escapes_pipes(
    result: dict[str, Any],
) -> None:
    result["findings"][0]["message"] = "a | b || c \\| d"
    out = render(result, "markdown")
    rows = _findings_table(out)
    assert len(rows) == 2 + len(result["findings"])  # header and delimiter rows
    for row in rows:
        assert len(UNESCAPED_PIPE.findall(row)) == 8, row  # 7 columns
    assert "a \\| b \\|\\| c \\\\\\| d" in rows[2]


def test_markdown_escapes_html_and_keeps_the_vendor_quote(result: dict[str, Any]) -> None:
    out = render(result, "markdown")
    assert not re.search(r"(?<!\\)<", out)  # every < is escaped
    assert "\\<script>alert('host')\\</script>" in out
    assert "\u202e" not in out
    assert out.count("\n### ") == len(result["findings"])
    assert "> Once the Agent and the App Layering appliance have exchanged identities," in out
    section = "App Layering Communication Flow: The Agent Service"
    assert f'> \u2014 003\\_8716eaddc5e9d753.txt, section "{section}"' in out
    assert "> Agent on Citrix Provisioning server \\| Appliance \\| Disk download" in out
    assert "**11 findings**: 3 high, 4 medium, 1 low, 3 info" in out


@pytest.mark.parametrize(
    ("text", "line_start", "escaped"),
    [
        ("a|b", False, "a\\|b"),
        ("<script>", False, "\\<script>"),
        ("# not a heading", True, "\\# not a heading"),
        ("1. not a list", True, "1\\. not a list"),
        ("- not a list", True, "\\- not a list"),
        ("line\nbreak", False, "line break"),
        ("[x](javascript:alert(1))", False, "\\[x\\](javascript:alert(1))"),
    ],
)
def test_markdown_escaping(text: str, line_start: bool, escaped: str) -> None:
    assert markdown.md(text, line_start=line_start) == escaped
