"""Prints the SigV4 signature of an MSK IAM token as botocore computes it.

kafka_auth.rs's `iam_token_matches_botocore` test compares its own signature with this one.
AWS's aws-msk-iam-sasl-signer-python signs exactly like this: a GET of
https://kafka.REGION.amazonaws.com/?Action=kafka-cluster%3AConnect, service "kafka-cluster",
presigned in the query (SigV4QueryAuth) for 900 s. Run with any Python that has botocore
(the test services' venv has it through moto):
    ~/.cache/linkmeter-services/venv/bin/python ingest/src/source/testdata/msk_iam_botocore.py
"""
import datetime
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "SESSIONTOKEN/+=")
at = datetime.datetime(2023, 11, 14, 22, 13, 20)  # 1_700_000_000 s after the epoch, UTC
req = AWSRequest(method="GET", url="https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect")
with mock.patch.object(botocore.auth.datetime, "datetime", wraps=datetime.datetime) as dt:
    dt.utcnow.return_value = at
    dt.now.return_value = at
    botocore.auth.SigV4QueryAuth(creds, "kafka-cluster", "eu-west-1", expires=900).add_auth(req)
q = parse_qs(urlsplit(req.url).query)
assert q["X-Amz-Date"] == ["20231114T221320Z"], q["X-Amz-Date"]
print(q["X-Amz-Signature"][0])
