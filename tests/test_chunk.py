from index.ingest.chunk import chunk_document, passage_id, split_to_fit
from index.ingest.clean import Block
from index.ingest.document import Document


def words(text: str) -> int:
    return len(text.split())


def doc(*blocks: tuple[str, str], title: str = "Tiêu đề bài") -> Document:
    return Document(doc_id="d", title=title, blocks=[Block(kind, text) for kind, text in blocks])


def test_paragraphs_become_passages_under_their_heading():
    passages = list(
        chunk_document(doc(("paragraph", "Mở đầu."), ("heading", "Phần A"), ("paragraph", "Nội dung A.")), words, 50)
    )
    assert [(p.position, p.heading, p.text) for p in passages] == [(0, None, "Mở đầu."), (1, "Phần A", "Nội dung A.")]
    assert passages[1].embedding_text == "Tiêu đề bài — Phần A\nNội dung A."


def test_long_paragraph_is_split_on_sentences_with_overlap_and_fits():
    sentences = [f"Câu số {i} có năm từ." for i in range(10)]  # 6 words each
    windows = split_to_fit(" ".join(sentences), words, 20)
    assert all(words(w) <= 20 for w in windows)
    assert windows[0] == " ".join(sentences[:3])
    assert windows[1].startswith(sentences[2])  # one sentence shared with the previous window
    assert windows[-1].endswith(sentences[-1])
    covered = " ".join(windows)
    assert all(s in covered for s in sentences)


def test_sentence_longer_than_budget_is_cut_between_words():
    long_sentence = " ".join(f"từ{i}" for i in range(25)) + "."
    windows = split_to_fit(long_sentence, words, 10)
    assert [words(w) for w in windows] == [10, 10, 5]


def test_context_counts_against_the_budget():
    text = " ".join(["một hai ba bốn năm."] * 4)  # 20 words
    passages = list(chunk_document(doc(("heading", "Một phần dài"), ("paragraph", text)), words, 24))
    assert len(passages) > 1
    assert all(words(p.embedding_text) <= 24 for p in passages)


def test_ids_are_stable_and_distinct():
    first = [p.id for p in chunk_document(doc(("paragraph", "A."), ("paragraph", "B.")), words, 50)]
    again = [p.id for p in chunk_document(doc(("paragraph", "A."), ("paragraph", "B.")), words, 50)]
    assert first == again and len(set(first)) == 2
    assert passage_id("d", 0, "A.") != passage_id("e", 0, "A.") != passage_id("d", 1, "A.")
    assert all(len(i) == 16 and int(i, 16) < 2**63 for i in first)


def test_text_without_spaces_or_sentences_is_cut_to_fit():
    """A 262 KB run of one "word" was stored and served as one passage."""

    def characters(text: str) -> int:  # a tokenizer's view of a long run: a token per 4 characters
        return sum(-(-len(word) // 4) for word in text.split())

    run = "x" * 262_000
    windows = split_to_fit(f"Mở đầu {run} kết thúc.", characters, 256)
    assert all(characters(w) <= 256 for w in windows)
    assert "".join(w.replace("Mở đầu", "").replace("kết thúc.", "").replace(" ", "") for w in windows) == run
    assert windows[0].startswith("Mở đầu") and windows[-1].endswith("kết thúc.")
