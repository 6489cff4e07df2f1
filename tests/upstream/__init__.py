"""The loopback stand-in for the LLM providers chatsite talks to, shared by tests/ and bench/.

- ``SparkServer`` (server.py): iFlytek Spark's HTTP chat API (docs/spark-protocol.md) on asyncio;
  ``UpstreamServer`` is the same with any ``Dialect`` (``dialect=``), or with several on one
  port (``dialects=``, each under ``/<name>``; ``base_url(name)``); ``MultiDialectServer`` serves
  every dialect. Each entry of ``requests`` names the ``dialect`` that answered it.
- The dialects (dialects.py), one per provider of providers-protocol.md, named as the product's
  client names them (``ALL_DIALECTS``): ``spark``, ``spark-x``, ``deepseek``, ``qwen``, ``glm``,
  ``kimi``, ``doubao``, ``qianfan``, ``hunyuan``, ``ollama``, ``vllm``, ``openai``
  (``DIALECTS`` maps each to its class, ``make_dialect(name)`` builds one). Each knows where
  usage arrives, its reasoning field and switch, its error bodies and statuses, its quirks.
- ``Plan`` and the ``[[directive]]`` language (plan.py): how one request is answered, including
  ``[[reasoning]]``, ``[[error:CLASS]]`` (``ERROR_CLASSES``), ``[[stream_error]]``,
  ``[[finish:REASON]]``, ``[[search]]`` and ``[[drop]]`` in every dialect.
- ``python -m tests.spark_server --port 0 [--dialect NAME|all] ...``: the same server in its own
  process (benchmarks).
"""

from .dialects import (
    ALL_DIALECTS,
    DIALECTS,
    DeepSeekDialect,
    Dialect,
    DoubaoDialect,
    ErrorRow,
    GLMDialect,
    HunyuanDialect,
    KimiDialect,
    OllamaDialect,
    OpenAIDialect,
    QianfanDialect,
    QwenDialect,
    Rejection,
    SparkDialect,
    SparkXDialect,
    Turn,
    VLLMDialect,
    make_dialect,
)
from .plan import (
    DEFAULT_REASONING,
    ERROR_CLASSES,
    FRAMINGS,
    Plan,
    estimate_tokens,
    parse_directives,
    split_tokens,
)
from .server import MultiDialectServer, SparkServer, UpstreamServer, main

MODEL_WINDOWS = SparkDialect.model_windows

__all__ = [
    "ALL_DIALECTS",
    "DEFAULT_REASONING",
    "DIALECTS",
    "ERROR_CLASSES",
    "FRAMINGS",
    "MODEL_WINDOWS",
    "DeepSeekDialect",
    "Dialect",
    "DoubaoDialect",
    "ErrorRow",
    "GLMDialect",
    "HunyuanDialect",
    "KimiDialect",
    "MultiDialectServer",
    "OllamaDialect",
    "OpenAIDialect",
    "Plan",
    "QianfanDialect",
    "QwenDialect",
    "Rejection",
    "SparkDialect",
    "SparkServer",
    "SparkXDialect",
    "Turn",
    "UpstreamServer",
    "VLLMDialect",
    "estimate_tokens",
    "main",
    "make_dialect",
    "parse_directives",
    "split_tokens",
]
