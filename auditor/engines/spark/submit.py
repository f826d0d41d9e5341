"""The driver program for ``spark-submit``, which wants a Python file, not a console script:

    spark-submit --master yarn ... "$(python -m auditor.engines.spark.submit --path)" \\
        /shared/night/ -r applayering --engine spark --format sarif -o night.sarif

Runs the ``pcap-audit`` command line as it is; the session is spark-submit's own.
"""

from __future__ import annotations

import sys

from auditor.cli.entry import main

if __name__ == "__main__":
    if sys.argv[1:] == ["--path"]:
        print(__file__)
    else:
        main()
