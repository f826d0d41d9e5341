"""Builds the compiled pieces: the record scanner and header decoder (auditor/capture/_fast.c),
the flow table's inner loop (auditor/_flowtab.c) and the flow identifiers (auditor/_flowid.c).

Everything else is pure Python; see pyproject.toml for the metadata.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "auditor.capture._fast",
            sources=["auditor/capture/_fast.c", "auditor/capture/decode.c"],
            depends=["auditor/capture/decode.h"],
            extra_compile_args=["-O2", "-std=c99", "-Wall"],
        ),
        Extension(
            "auditor._flowid",
            sources=["auditor/_flowid.c"],
            extra_compile_args=["-O2", "-std=c99", "-Wall"],
        ),
        Extension(
            "auditor._flowtab",
            sources=["auditor/_flowtab.c"],
            extra_compile_args=["-O2", "-std=c99", "-Wall"],
        ),
    ]
)
