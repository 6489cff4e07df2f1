"""The Spark stand-in, under the name tests and benchmarks import (the code is in tests/upstream/).

    python -m tests.spark_server --port 0 --first-token-delay 0.5 --token-interval 0.05 --tokens 40

prints ``http://127.0.0.1:PORT/v1`` and serves until killed. With ``--dialect NAME`` (repeatable,
or ``all``) it speaks other providers' dialects (tests/upstream/dialects.py); with several, the
first line is the origin and each dialect's ``NAME BASE_URL`` follows.
"""

import sys

from tests.upstream import (
    ALL_DIALECTS,
    MODEL_WINDOWS,
    MultiDialectServer,
    Plan,
    SparkDialect,
    SparkServer,
    UpstreamServer,
    estimate_tokens,
    main,
    split_tokens,
)

__all__ = ["MODEL_WINDOWS", "Plan", "SparkDialect", "SparkServer", "estimate_tokens", "main"]
__all__ += ["ALL_DIALECTS", "MultiDialectServer", "UpstreamServer", "split_tokens"]

if __name__ == "__main__":
    sys.exit(main())
