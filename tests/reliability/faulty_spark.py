"""The name the fault and attack tests use for the Spark stand-in.

``[[directive]]``s ride in the user's message, and chatsite merges a failed turn's question into the
next one (Spark wants alternating turns), so a directive would fail the next message too. Those
tests arm a fault for the next request only with the server's public ``fail_next(upstream="11200")``
and then show that the conversation's next message gets a normal reply.
"""

from tests.spark_server import SparkServer as FaultySpark

__all__ = ["FaultySpark"]
