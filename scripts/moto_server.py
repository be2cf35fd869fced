"""Starts moto's server (S3, DynamoDB, SQS and SNS on loopback) for the tests and the
benches, with S3's conditional writes made atomic as they are on S3.

moto checks a PutObject's If-Match / If-None-Match and then writes, with no lock in
between, so two concurrent compare-and-swap writers can both succeed where S3 lets one
through (seen as a lost quarantine trap entry, about one run in five). One lock around
moto's PutObject handler restores S3's behaviour; everything else is moto's own.
Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT (moto_server's arguments).
"""
import sys
import threading

from moto.s3.responses import S3Response
from moto.server import main

_lock = threading.Lock()
_put_object = S3Response.put_object


def put_object(self, *args, **kwargs):
    with _lock:
        return _put_object(self, *args, **kwargs)


S3Response.put_object = put_object

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
