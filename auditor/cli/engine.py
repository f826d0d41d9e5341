"""--engine, --master and --split-size, shared by the audit and ``flows``."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from auditor.capture.select import PacketFilter
from auditor.errors import ExitCode
from auditor.traffic import Traffic

F = TypeVar("F", bound=Callable[..., Any])

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)i?b?\s*$", re.IGNORECASE)


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    m = _SIZE.match(value)
    if not m or int(m.group(1)) < 1:
        raise click.BadParameter(f"{value!r} is not a size (e.g. 256M, 4G, 65536)")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def engine_options(func: F) -> F:
    """The command gets ``engine``, ``master`` and ``split_size`` (bytes)."""

    @click.option(
        "--split-size",
        default="256M",
        show_default=True,
        callback=_size,
        help="With --engine spark: uncompressed pcaps larger than this are read by several tasks.",
    )
    @click.option(
        "--master",
        default="local[*]",
        show_default=True,
        help="With --engine spark: the Spark master URL (ignored under spark-submit, "
        "which sets its own).",
    )
    @click.option(
        "--engine",
        type=click.Choice(["local", "spark"]),
        default="local",
        show_default=True,
        help="Read the captures in this process, or with Apache Spark tasks "
        "(pip install 'pcap-audit[spark]' and a Java runtime).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def reader_for(
    engine: str,
    master: str,
    split_size: int,
    dedup: bool,
    jobs: int | None = None,
    select: PacketFilter | None = None,
    deep: bool = False,
) -> Callable[[list[str]], Traffic] | None:
    """The Spark engine's reader, or None for the local engine. The options that only the
    local engine has are refused with one usage line each."""
    if engine == "local":
        return None
    from auditor.cli.common import fail

    if dedup:
        fail(
            "--dedup is not supported with --engine spark (it is sequential over files)",
            ExitCode.USAGE,
        )
    if jobs is not None:
        fail(
            "--jobs is not supported with --engine spark (Spark runs one task per split: "
            "size them with --split-size)",
            ExitCode.USAGE,
        )
    if select is not None and select.active:
        fail(
            "--since/--until/--host/--port/--filter are not supported with --engine spark "
            "(the tasks read every packet)",
            ExitCode.USAGE,
        )
    if deep:
        fail(
            "--deep is not supported with --engine spark (run it with the local engine)",
            ExitCode.USAGE,
        )
    from auditor.engines.spark import read_traffic_spark

    return functools.partial(read_traffic_spark, master=master, split_bytes=split_size)


def parquet_dir_option(func: F) -> F:
    """--parquet-dir DIR; the command gets ``parquet_dir`` (created, or a usage error)."""

    def _check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            os.makedirs(value, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"{value}: cannot be created: {exc.strerror or exc}") from None
        if not os.access(value, os.W_OK):
            raise click.BadParameter(f"{value}: not writable")
        return value

    return click.option(
        "--parquet-dir",
        type=click.Path(file_okay=False),
        callback=_check,
        help="Also write the flows (and findings) as Hive-partitioned Parquet datasets "
        "(date=/capture=) under this directory: DIR/flows, DIR/findings.",
    )(func)
