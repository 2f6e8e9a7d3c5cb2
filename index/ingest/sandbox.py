"""Reading files nobody vouches for (uploads): each file in a child process of its own, with a cap
on its memory (RLIMIT_AS), its CPU time (RLIMIT_CPU) and its wall time, so that a PDF bomb or a
10,000-page file costs a child, never the server's worker. The child reads with the same code as
`semsearch index` (files.py) and hands the documents back as JSON on stdout."""

from __future__ import annotations

import dataclasses
import json
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from index.ingest.clean import Block
from index.ingest.document import Document
from index.ingest.files import InputFile, Limits, Reading, read_documents, refused_unread


@dataclass(frozen=True)
class SandboxLimits:
    memory_bytes: int = 1024 * 1024 * 1024
    cpu_seconds: int = 30
    wall_seconds: float = 60.0
    max_pages: int = 500


def read_untrusted(files: list[InputFile], limits: SandboxLimits, reading: Reading, origin: str) -> list[Document]:
    """The documents of `files`, each read in a child within `limits`; what could not be read,
    or broke a limit, in `reading`."""
    documents: list[Document] = []
    for file in files:
        refused = refused_unread(file)
        if refused:  # a child costs half a second: not for a file its name and first bytes refuse
            reading.skip_file(file.name, refused)
            continue
        request = {"path": str(file.path), "name": file.name, "limits": dataclasses.asdict(limits)}
        try:
            child = subprocess.run(
                [sys.executable, "-m", "index.ingest.sandbox"],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=limits.wall_seconds,
            )
        except subprocess.TimeoutExpired:
            reading.skip_file(file.name, f"took longer than {limits.wall_seconds:g} s to read")
            continue
        if child.returncode != 0:
            reading.skip_file(file.name, _failure(child, limits))
            continue
        answer = json.loads(child.stdout)
        reading.files.update(answer["files"])
        reading.documents += len(answer["documents"])
        for what, why in answer["skipped"]:
            (reading.skip_file if what == file.name else reading.skip)(what, why)
        for fields in answer["documents"]:
            blocks = [Block(**block) for block in fields.pop("blocks")]
            documents.append(Document(**{**fields, "blocks": blocks, "origin": origin}))
    return documents


def _failure(child: subprocess.CompletedProcess, limits: SandboxLimits) -> str:
    if child.returncode in (-9, -24) or "MemoryError" in child.stderr or "CPU" in child.stderr:
        return f"needed more than {limits.memory_bytes // 2**20} MiB or {limits.cpu_seconds} s of CPU to read"
    return "could not be read (its reader failed)"


def _child() -> None:
    request = json.loads(sys.stdin.read())
    limits = SandboxLimits(**request["limits"])
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    reading = Reading()
    file = InputFile(Path(request["path"]), request["name"])
    documents = list(read_documents([file], reading, limits=Limits(max_pages=limits.max_pages)))
    answer = {
        "files": dict(reading.files),
        "skipped": reading.skipped,
        "documents": [{**dataclasses.asdict(doc), "origin": doc.origin} for doc in documents],
    }
    json.dump(answer, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    _child()
