"""A real S3-compatible server on 127.0.0.1 for tests: moto's server mode in a subprocess (no tests here).

``local_s3()`` starts ``python -m moto.server`` on a free loopback port, waits until it answers, and
yields an ``S3Server`` whose ``env`` holds the standard AWS variables a client needs (fake
credentials, ``AWS_ENDPOINT_URL``). The clients under test (s3fs/botocore, pyarrow's S3FileSystem,
DuckDB through fsspec) find the server through those variables alone, as they would find a real
bucket: nothing in ``puffy`` knows it is talking to moto.

A subprocess rather than moto's ``ThreadedMotoServer``: a writer the tests SIGKILL runs in its own
process and the server must outlive it, and the server's request handling then does not compete
with the test for the test process's GIL. The server lives as long as the block (bounded by pytest's
session); it is terminated, then killed, on exit, so a failing test cannot leave it running.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

#: Environment variables that would point a client at another account or endpoint; cleared for tests.
_FOREIGN_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    process: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables for this server (what a user exports for a real bucket)."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata probe for credentials
        }

    def _admin(self, service: str):
        """A boto3 client of ``service`` with the test credentials (the setup's, whatever the test sets)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def new_bucket(self, prefix: str = "puffy-test") -> str:
        """Create a bucket with a fresh name (tests share the server, not buckets); return its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self._admin("s3").create_bucket(Bucket=name)
        return name

    def credentials_limited_to(self, statements: list[dict]) -> dict[str, str]:
        """Create an IAM user allowed only ``statements`` (IAM policy statements), turn on moto's
        checking of every later request's credentials against IAM (``/moto-api/reset-auth``: the
        server is then strict for the rest of its life, so use a server of your own), and return
        the AWS variables of that user's keys."""
        import json

        iam = self._admin("iam")
        user = f"puffy-test-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        policy = {"Version": "2012-10-17", "Statement": statements}
        iam.put_user_policy(UserName=user, PolicyName="limited", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        strict = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(strict, timeout=10).close()
        return {**self.env, "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(endpoint: str, process: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@contextmanager
def local_s3(startup_timeout: float = 60.0, attempts: int = 3) -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 for the block (see module doc); retried on another port if the
    chosen one was taken between choosing and binding."""
    # The server logs every request to stderr: a file, not a pipe nobody reads (which would fill and block it).
    with tempfile.TemporaryFile(mode="w+", prefix="moto-") as log:
        for attempt in range(attempts):
            port = _free_port()
            endpoint = f"http://127.0.0.1:{port}"
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
            if _wait_until_up(endpoint, process, startup_timeout):
                break
            _stop(process)
            if attempt == attempts - 1:
                log.seek(0)
                raise RuntimeError(f"moto's S3 server did not start on 127.0.0.1:{port}: {log.read()[-2000:]}")
        try:
            yield S3Server(endpoint, process)
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def aws_environment(server: S3Server) -> Iterator[dict[str, str]]:
    """Set ``server.env`` in ``os.environ`` (and clear variables that would point elsewhere) for the
    block; restore the previous environment afterwards. Yields the variables set."""
    saved = {k: os.environ.get(k) for k in (*server.env, *_FOREIGN_AWS_VARIABLES)}
    try:
        for key in _FOREIGN_AWS_VARIABLES:
            os.environ.pop(key, None)
        os.environ.update(server.env)
        yield server.env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
