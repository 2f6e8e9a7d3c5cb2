"""The contract test: schemathesis against the running server's own /openapi.json, every operation,
every check it has (5xx, status codes, content types, response schemas and headers, schema-valid
requests accepted, schema-violating ones refused), the stateful phase following the document's links."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_index, start_server

pytestmark = pytest.mark.model

EXAMPLES_PER_OPERATION = 100


@pytest.mark.parametrize("backend", ["embedded", "milvus"])
def test_every_operation_keeps_its_contract(backend, request, tmp_path):
    # a copy: the write routes are exercised too, with a key
    if backend == "embedded":
        index, location = copy_index(request.getfixturevalue("real_index"), tmp_path / "copy"), ()
    else:
        index = tmp_path / "unused"
        shutil.copytree(request.getfixturevalue("real_milvus"), tmp_path / "milvus.db")
        location = ("--milvus-uri", str(tmp_path / "milvus.db"))
    key = "contract-test-key"
    process, base = start_server(
        index, *location, "--workers", "2", "--rate-limit", "off", env={"SEMSEARCH_API_KEYS": key}
    )
    try:
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "--config-file",
                str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                "1",
                "--generation-database",
                ":memory:",
                "--header",
                f"Authorization: Bearer {key}",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1"},
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert generated and generated.group(1) == generated.group(2), summary
    assert int(generated.group(1)) >= 500, summary
    operations = re.search(r"Tested: (\d+)", run.stdout)
    assert operations and int(operations.group(1)) >= 15, summary
