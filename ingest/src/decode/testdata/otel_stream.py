"""Writes otel_stream.bin: CloudWatch Metric Streams output in the OpenTelemetry 1.0.0 format,
encoded by the official OpenTelemetry protobuf classes (PyPI opentelemetry-proto 1.27.0,
protobuf), so the hand-written decoder in otel.rs is checked against an independent encoder.

The layout follows AWS's page "CloudWatch metric stream output in OpenTelemetry 1.0.0 format"
and its translation page: each ExportMetricsServiceRequest is preceded by an unsigned varint
of its length; the resource carries cloud.provider, cloud.account.id, cloud.region and
aws.exporter.arn; every datapoint is a Summary whose attributes are Namespace, MetricName and
Dimensions (a key-value list), with sum, count and quantiles 0.0 (min), 0.99, 0.999 and 1.0
(max); units are UCUM (Bytes/Second -> By/s). Two requests: an MSK BytesInPerSec datapoint per
broker (1 and 2) of cluster orders-prod, and one DynamoDB datapoint (another namespace).

    pip install opentelemetry-proto==1.27.0
    python otel_stream.py   # writes otel_stream.bin next to this file
"""
import pathlib

from google.protobuf.internal.encoder import _VarintBytes
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList

START = 1790812800 * 10**9  # 2026-10-01T00:00:00Z


def kv(k, v):
    if isinstance(v, dict):
        return KeyValue(key=k, value=AnyValue(kvlist_value=KeyValueList(values=[kv(a, b) for a, b in v.items()])))
    return KeyValue(key=k, value=AnyValue(string_value=v))


def request(metrics):
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    for k, v in [("cloud.provider", "aws"), ("cloud.account.id", "999999999999"), ("cloud.region", "us-east-1"),
                 ("aws.exporter.arn", "arn:aws:cloudwatch:us-east-1:999999999999:metric-stream/msk-metrics")]:
        rm.resource.attributes.append(kv(k, v))
    sm = rm.scope_metrics.add()
    for name, unit, ns, metric, dims, count, total, lo, hi in metrics:
        m = sm.metrics.add(name=name, unit=unit)
        dp = m.summary.data_points.add(start_time_unix_nano=START, time_unix_nano=START + 60 * 10**9, count=count, sum=total)
        dp.attributes.extend([kv("Namespace", ns), kv("MetricName", metric), kv("Dimensions", dims)])
        for q, v in [(0.0, lo), (0.99, hi), (0.999, hi), (1.0, hi)]:
            dp.quantile_values.add(quantile=q, value=v)
    return req.SerializeToString()


msk = request([
    ("amazonaws.com/AWS/Kafka/BytesInPerSec", "By/s", "AWS/Kafka", "BytesInPerSec",
     {"Cluster Name": "orders-prod", "Broker ID": str(b)}, 2, 3000.0 * b, 1000.0 * b, 2000.0 * b)
    for b in (1, 2)
])
ddb = request([("amazonaws.com/AWS/DynamoDB/ConsumedReadCapacityUnits", "{Count}", "AWS/DynamoDB",
                "ConsumedReadCapacityUnits", {"TableName": "MyTable"}, 1, 1.0, 1.0, 1.0)])
out = b"".join(_VarintBytes(len(r)) + r for r in (msk, ddb))
pathlib.Path(__file__).with_name("otel_stream.bin").write_bytes(out)
print(len(out), "bytes")
