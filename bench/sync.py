"""What `semsearch sync` costs when one file of a large folder changed: the folder is --documents
ViQuAD paragraphs, one text file each, indexed once with the default model; then, per repeat,
one file gets a new sentence and the folder is synced. Also a sync with nothing changed (reading
and fingerprinting the folder is all it does) and, for scale, the first build.

    python bench/sync.py [--documents 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import time
from pathlib import Path

from figures import spread

from index.build import build_index, sync_folder
from index.encode.embed import load_encoder

ROOT = Path(__file__).resolve().parent.parent
VIQUAD = ROOT.parent / "shared" / "eval" / "viquad" / "corpus.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = ROOT / "var" / "bench" / "sync"
    shutil.rmtree(work, ignore_errors=True)
    folder, out = work / "folder", work / "index"
    folder.mkdir(parents=True)
    records = [json.loads(line) for line in VIQUAD.read_text(encoding="utf-8").splitlines()[: args.documents]]
    for record in records:
        (folder / f"{record['id']}.txt").write_text(f"Đoạn {record['id']}\n\n{record['text']}\n", encoding="utf-8")
    encoder = load_encoder()
    started = time.perf_counter()
    built = build_index([folder], out, encoder, progress=False)
    took = time.perf_counter() - started
    print(f"first build: {built.written} documents, {built.commit.added} passages in {took:.0f} s")

    unchanged, changed = [], []
    for repeat in range(args.repeats):
        started = time.perf_counter()
        nothing = sync_folder(folder, out, encoder, progress=False)
        unchanged.append(time.perf_counter() - started)
        assert nothing.written == nothing.deleted == 0
        path = folder / f"{records[repeat]['id']}.txt"
        path.write_text(path.read_text(encoding="utf-8") + f"Câu thêm số {repeat}.\n", encoding="utf-8")
        started = time.perf_counter()
        synced = sync_folder(folder, out, encoder, progress=False)
        changed.append(time.perf_counter() - started)
        assert synced.written == 1 and synced.unchanged == len(records) - 1, synced
    print(f"sync, nothing changed:   {spread(unchanged)} s (min / median / max of {args.repeats})")
    print(f"sync, one file changed:  {spread(changed)} s (embedded {synced.embedded} passage(s) each time)")
    print(f"\n{datetime.date.today().isoformat()}, `python bench/sync.py` (documents={args.documents})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
