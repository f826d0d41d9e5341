"""Zeek logs as input, against the same traffic's capture.

Zeek is not installed here, so the logs of each sample capture are written the way Zeek
writes them (TSV with its ``#`` headers, or JSON lines; field names and value spellings
as in Zeek's conn, ssl and http logs) from the capture's own flow table. The audit of the
logs must then find what the audit of the capture finds, except what logs cannot tell,
which must come out as not verifiable. One hand-written log checks the header handling
and unset, empty and set values independently of that writer.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from auditor.cli.main import cli
from auditor.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

CONN = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents"]  # fmt: skip
CONN_TYPES = ["time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count", "count", "string", "bool", "bool", "count", "string", "count", "count", "count", "count", "set[string]"]  # fmt: skip
SSL = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "version", "cipher", "server_name", "resumed", "established", "cert_chain_fps", "client_cert_chain_fps"]  # fmt: skip
SSL_TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "string",
    "string",
    "string",
    "bool",
    "bool",
    "vector[string]",
    "vector[string]",
]
HTTP = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "trans_depth", "method", "host", "uri", "version", "user_agent", "status_code"]  # fmt: skip
HTTP_TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "count",
    "string",
    "string",
    "string",
    "string",
    "string",
    "count",
]

SERVICES = {"tls": "ssl", "http": "http", "dns": "dns", "ssh": "ssh", "smb": "smb,gssapi",
            "ldap": "ldap_tcp", "ntp": "ntp", "dhcp": "dhcp", "mysql": "mysql", "ftp": "ftp",
            "ftp-data": "ftp-data", "irc": "irc", "kerberos": "krb_tcp", "dcerpc": "dce_rpc",
            "rdp": "rdp", "smtp": "smtp", "pop3": "pop3", "imap": "imap", "modbus": "modbus",
            "quic": "quic", "dtls": "dtls", "snmp": "snmp", "syslog": "syslog",
            "postgresql": "postgresql", "vnc": "rfb"}  # fmt: skip
#: what Zeek (default scripts) does not name in conn.log: the findings that stand on it
ZEEK_CANNOT_NAME = {"telnet"}
STATES = {"attempted": "S0", "rejected": "REJ", "established": "S1", "closed": "SF",
          "midstream": "OTH"}  # fmt: skip
VERSIONS = {"SSL 3.0": "SSLv3", "TLS 1.0": "TLSv10", "TLS 1.1": "TLSv11", "TLS 1.2": "TLSv12",
            "TLS 1.3": "TLSv13"}  # fmt: skip


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="pcap-audit")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def zeek_rows(capture: Path, client_certs: bool = True) -> dict[str, list[dict[str, Any]]]:
    """conn, ssl and http rows, as Zeek would log the capture's flows."""
    flows = json.loads(run("flows", capture, "--format", "json").stdout)["flows"]
    out: dict[str, list[dict[str, Any]]] = {"conn": [], "ssl": [], "http": []}
    for n, f in enumerate(flows):
        uid = f"C{n:017d}"
        ids = {"id.orig_h": f["src_ip"], "id.orig_p": f["src_port"], "id.resp_h": f["dst_ip"],
               "id.resp_p": f["dst_port"]}  # fmt: skip
        ts = _epoch(f["first_seen"])
        tcp = f["proto"] == "tcp"
        state = STATES[f["state"]] if tcp else ("SF" if f["packets_rev"] else "S0")
        history = {"S0": "S", "REJ": "Sr", "S1": "ShAD", "SF": "ShADadFf", "OTH": "Dd"}[state]
        out["conn"].append({
            "ts": ts, "uid": uid, **ids, "proto": "icmp" if f["proto"] == "icmp6" else f["proto"],
            "service": SERVICES.get(f["app"]), "duration": _epoch(f["last_seen"]) - ts,
            "orig_bytes": f["payload_bytes_fwd"], "resp_bytes": f["payload_bytes_rev"],
            "conn_state": state, "local_orig": None, "local_resp": None, "missed_bytes": 0,
            "history": history if tcp else "Dd", "orig_pkts": f["packets_fwd"],
            "orig_ip_bytes": f["bytes_fwd"] - 14 * f["packets_fwd"],
            "resp_pkts": f["packets_rev"], "resp_ip_bytes": f["bytes_rev"] - 14 * f["packets_rev"],
            "tunnel_parents": [],
        })  # fmt: skip
        if f["app"] == "tls" and f["tls_version"]:
            row = {"ts": ts, "uid": uid, **ids, "version": VERSIONS[f["tls_version"]],
                   "cipher": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "server_name": f["sni"],
                   "resumed": False, "established": True, "cert_chain_fps": ["ab12"]}  # fmt: skip
            if client_certs:
                row["client_cert_chain_fps"] = ["cd34"] if f["tls_client_cert"] else []
            out["ssl"].append(row)
        if f["app"] == "http" and f["http_method"]:
            out["http"].append({
                "ts": ts, "uid": uid, **ids, "trans_depth": 1, "method": f["http_method"],
                "host": f["http_host"], "uri": f["http_target"], "version": "1.1",
                "user_agent": f["http_user_agent"], "status_code": f["http_status"],
            })  # fmt: skip
    return out


def _tsv(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, list):
        return ",".join(value) if value else "(empty)"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def write_logs(folder: Path, rows: dict[str, list[dict[str, Any]]], fmt: str = "tsv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    layouts = {"conn": (CONN, CONN_TYPES), "ssl": (SSL, SSL_TYPES), "http": (HTTP, HTTP_TYPES)}
    for name, (fields, types) in layouts.items():
        if name == "ssl" and rows["ssl"] and "client_cert_chain_fps" not in rows["ssl"][0]:
            fields, types = fields[:-1], types[:-1]
        if fmt == "json":
            text = "".join(json.dumps({k: r.get(k) for k in fields if r.get(k) is not None}) + "\n"
                           for r in rows[name])  # fmt: skip
        else:
            head = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)",
                    "#unset_field\t-", f"#path\t{name}", "#open\t2025-11-22-00-00-00",
                    "#fields\t" + "\t".join(fields), "#types\t" + "\t".join(types)]  # fmt: skip
            body = ["\t".join(_tsv(r.get(k)) for k in fields) for r in rows[name]]
            text = "\n".join([*head, *body, "#close\t2025-11-22-00-05-00"]) + "\n"
        (folder / f"{name}.log").write_text(text)
    return folder


def _findings(args: list[Any]) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    res = run(*args, "--format", "json", "--fail-on", "never")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    return [(f["id"], f["kind"], f["severity"], f["rule_id"]) for f in doc["findings"]], doc


@pytest.mark.parametrize("ruleset", ["applayering", "uforge", "tas-diego"])
@pytest.mark.parametrize("fmt", ["tsv", "json"])
def test_zeek_logs_audit_like_the_capture(tmp_path: Path, ruleset: str, fmt: str) -> None:
    capture = SAMPLES / ruleset / "findings.pcap"
    inventory = SAMPLES / ruleset / "findings.inventory.yaml"
    logs = write_logs(tmp_path / "zeek", zeek_rows(capture), fmt)
    from_capture, cdoc = _findings([capture, "-r", ruleset, "-i", inventory])
    from_logs, zdoc = _findings([logs, "-r", ruleset, "-i", inventory])
    # what Zeek cannot name (Telnet) is judged by its port from the logs: flagged all the same
    cannot = {
        f["id"] for f in cdoc["findings"] if set(f["evidence"].get("apps") or []) & ZEEK_CANNOT_NAME
    }
    only_capture = [f for f in from_capture if f not in from_logs]
    only_logs = [f for f in from_logs if f not in from_capture]
    assert {f[0] for f in only_capture} == cannot
    assert len(only_logs) == len(only_capture)
    assert all(kind == "unexpected_port" for _, kind, *_ in only_logs)
    assert [f for f in from_logs if f not in only_logs] == [
        f for f in from_capture if f not in only_capture
    ]
    assert zdoc["summary"]["flows"] == cdoc["summary"]["flows"]
    assert zdoc["summary"]["packets"] == cdoc["summary"]["packets"]
    (record,) = zdoc["captures"]
    assert record["format"] == "zeek" and record["path"] == str(logs)
    assert record["decode_errors"] == {} and record["warnings"] == []


def test_what_the_logs_cannot_tell_is_not_verifiable(tmp_path: Path) -> None:
    """tas-diego documents mutual TLS; an ssl.log without client_cert_chain_fps cannot say
    whether the client sent a certificate: the finding is info, verifiable false."""
    capture = SAMPLES / "tas-diego" / "findings.pcap"
    args = ["-r", "tas-diego", "-i", SAMPLES / "tas-diego" / "findings.inventory.yaml"]
    logs = write_logs(tmp_path / "zeek", zeek_rows(capture, client_certs=False))
    _, cdoc = _findings([capture, *args])
    _, zdoc = _findings([logs, *args])
    cap = {f["id"]: f for f in cdoc["findings"] if f["kind"] == "mtls_not_observed"}
    log = {f["id"]: f for f in zdoc["findings"] if f["kind"] == "mtls_not_observed"}
    # every mutual-TLS flow is now unverifiable, including those the capture shows with a
    # client certificate (no finding from the capture)
    assert set(cap) < set(log)
    assert any(f["evidence"]["verifiable"] for f in cap.values())
    assert all(f["evidence"]["verifiable"] is False for f in log.values())
    assert all(f["severity"] == "info" for f in log.values())
    assert zdoc["captures"][0]["warnings"] == [
        "ssl.log has no client_cert_chain_fps: client certificates are not verifiable"
    ]


HAND_WRITTEN = """\
#separator \\x09
#set_separator\t,
#empty_field\t(empty)
#unset_field\t-
#path\tconn
#open\t2025-11-22-00-00-00
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]
1763769600.000500\tCHhAvVGS1DHFjwGM9\t10.10.0.21\t49152\t10.10.0.10\t3009\ttcp\thttp\t0.500000\t300\t400000\tSF\t-\t-\t0\tShADadFf\t10\t820\t290\t411600\t(empty)
1763769601.000000\tC4J4Th3PJpwUYZZ6gc\t10.10.0.21\t49153\t10.10.0.10\t22\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t60\t0\t0\t(empty)
this line is not a log line
1763769601.500000\tCbad1\t10.0.0.300\t1\t10.10.0.10\t80\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t60\t0\t0\t(empty)
1763769601.600000\tCbad2\tfe80::zz\t1\t10.10.0.10\t80\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t60\t0\t0\t(empty)
1763769601.700000\tCbad3\t10.0.0.1\tport\t10.10.0.10\t80\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t60\t0\t0\t(empty)
1763769602.000000\tCtPZjS20MLrsMUOJi2\tfe80::1\t133\tff02::2\t0\ticmp\t-\t-\t-\t-\tOTH\t-\t-\t0\t-\t1\t56\t0\t0\t(empty)
#close\t2025-11-22-00-05-00
"""


def test_a_hand_written_conn_log(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    with gzip.open(folder / "conn.log.gz", "wt") as fh:
        fh.write(HAND_WRITTEN)
    res = run("flows", folder, "--format", "json")
    # 4 lines of 7 not read: more than 1 %, so the logs are not complete (a capture problem)
    assert res.exit_code == ExitCode.CAPTURE, res.output
    doc = json.loads(res.stdout)
    (record,) = doc["captures"]
    assert record["decode_errors"] == {"bad_line": 4}  # not a line; bad v4, v6, port
    assert len(doc["flows"]) == 3
    assert record["compressed"] is True and record["complete"] is False
    assert record["warnings"] == [
        "4 log lines did not parse and were skipped",
        "no ssl.log: TLS versions, server names and client certificates unknown",
        "no http.log: HTTP methods, hosts and user agents unknown",
    ]
    assert res.stderr.splitlines() == [f"pcap-audit: {folder}: {w}" for w in record["warnings"]]
    by_port = {f["dst_port"]: f for f in doc["flows"]}
    bits = by_port[3009]
    assert (bits["src_ip"], bits["proto"], bits["app"], bits["state"]) == (
        "10.10.0.21",
        "tcp",
        "http",
        "closed",
    )
    assert (bits["packets_fwd"], bits["packets_rev"], bits["payload_bytes_rev"]) == (
        10,
        290,
        400000,
    )
    assert bits["first_seen"] == "2025-11-22T00:00:00.000500Z"
    assert bits["last_seen"] == "2025-11-22T00:00:00.500500Z"
    assert bits["encrypted"] is False and bits["direction_inferred"] is False
    ssh = by_port[22]
    assert (ssh["state"], ssh["app"], ssh["encrypted"]) == ("attempted", "none", None)
    icmp = by_port[0]
    assert (icmp["proto"], icmp["src_ip"], icmp["state"]) == ("icmp6", "fe80::1", None)
    assert all(f["community_id"].startswith("1:") for f in doc["flows"])


def test_a_log_that_is_not_a_zeek_log(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "conn.log").write_text("hello\n")
    res = run(folder, "-r", "applayering")
    assert res.exit_code == ExitCode.CAPTURE
    assert (
        f"{folder / 'conn.log'}:line 1: not a Zeek log: expected a '#separator' header"
        in res.stderr
    )


def test_zeek_logs_in_the_store(tmp_path: Path) -> None:
    """A directory of logs is one capture of the store, known by its logs' content."""
    capture = SAMPLES / "uforge" / "findings.pcap"
    logs = write_logs(tmp_path / "zeek", zeek_rows(capture))
    store = tmp_path / "s.duckdb"
    args = [logs, "-r", "uforge", "--store", store, "--format", "json"]
    first = run(*args)
    assert f"{store}: recorded as run 1 (1 capture)" in first.stderr
    again = run(*args)
    assert "not recorded again" in again.stderr
    (logs / "http.log").write_text((logs / "http.log").read_text().replace("PUT", "GET"))
    third = run(*args)
    assert f"{store}: recorded as run 2 (1 capture)" in third.stderr


def test_a_day_of_hourly_rotated_logs(tmp_path: Path) -> None:
    """Zeek archives a day's logs hourly, gzip'd, as conn.00:00:00-01:00:00.log.gz: the
    directory is read whole, each file with its own header."""
    capture = SAMPLES / "applayering" / "findings.pcap"
    rows = zeek_rows(capture)
    half = len(rows["conn"]) // 2
    day = tmp_path / "2025-11-22"
    for hour, part in (
        ("00:00:00-01:00:00", rows["conn"][:half]),
        ("01:00:00-02:00:00", rows["conn"][half:]),
    ):
        write_logs(tmp_path / hour, {"conn": part, "ssl": rows["ssl"], "http": rows["http"]})
        day.mkdir(exist_ok=True)
        for name in ("conn", "ssl", "http"):
            if name != "conn" and hour.startswith("01"):
                continue  # ssl and http in the first hour's files only
            with gzip.open(day / f"{name}.{hour}.log.gz", "wt") as fh:
                fh.write((tmp_path / hour / f"{name}.log").read_text())
    inventory = ["-r", "applayering", "-i", SAMPLES / "applayering" / "findings.inventory.yaml"]
    from_logs, doc = _findings([day, *inventory])
    whole, _ = _findings([write_logs(tmp_path / "whole", rows), *inventory])
    assert from_logs == whole  # the hourly files read as the day's one log
    assert [len(v) for v in doc["captures"][0]["logs"].values()] == [2, 1, 1]
