import pytest

from index.build import build_from_documents
from index.ingest.document import document_from_record
from index.ingest.files import find_files, read_documents
from index.retrieve.answer import BIGRAM_BONUS, MARK_MIN_WEIGHT, Annotator, answer_key
from index.store.accents import NearbyText, with_usual_capitals
from index.store.analysis import analyze
from index.store.embedded.publish import open_index
from index.text import folded_words, query_terms, sentence_spans
from tests.conftest import CORPUS, FakeEncoder


def flat(word: str) -> float:
    """Every word as rare as a highlighted word may be."""
    return MARK_MIN_WEIGHT


def answer_span(text, query, weight):
    return Annotator(query, weight)(text).answer


def highlights(text, query, weight=flat):
    return Annotator(query, weight)(text).marks


def oracle_answer(text, query, weight):
    """The answer by its definition: each sentence folded and scored on its own."""
    terms = set(query_terms(query))
    query_words = folded_words(query)
    pairs = {(a, b) for a, b in zip(query_words, query_words[1:]) if a in terms or b in terms}
    best = None
    for start, end in sentence_spans(text):
        words = folded_words(text[start:end])
        score = sum(weight(w) for w in terms.intersection(words))
        score += BIGRAM_BONUS * sum(weight(a) + weight(b) for a, b in zip(words, words[1:]) if (a, b) in pairs)
        if score > 0 and (best is None or score > best[0]):
            best = (score, (start, end))
    return best[1] if best else None


def test_answers_agree_with_scoring_each_sentence_alone():
    texts = [block.text for doc in read_documents(find_files([CORPUS])) for block in doc.blocks]
    queries = ["Đảng bộ Khối có bao nhiêu đảng viên?", "dang vien moi ket nap", "chi bo co so", "hiến máu tình nguyện"]
    weight = lambda w: 1.0 + len(w) % 3  # noqa: E731 - uneven weights, so ties do not hide mistakes
    answered = 0
    for query in queries:
        annotate = Annotator(query, weight)
        for text in texts:
            expected = oracle_answer(text, query, weight)
            assert annotate(text).answer == expected
            answered += expected is not None
    assert answered > 50


def test_sentence_spans_cover_the_sentences():
    text = "Mở đầu. Chi bộ có 9/26 đảng viên. “Trích dẫn” ở đây! Hết"
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Mở đầu.",
        "Chi bộ có 9/26 đảng viên.",
        "“Trích dẫn” ở đây!",
        "Hết",
    ]


def test_answer_is_the_sentence_with_the_query_words():
    text = "Hội nghị diễn ra sáng nay. Toàn Đảng bộ đã kết nạp 972 đảng viên mới. Các đại biểu thảo luận."
    start, end = answer_span(text, "Đảng bộ kết nạp bao nhiêu đảng viên?", flat)
    assert text[start:end] == "Toàn Đảng bộ đã kết nạp 972 đảng viên mới."
    # typed without accents, the same sentence
    assert answer_span(text, "dang bo ket nap bao nhieu dang vien", flat) == (start, end)
    assert answer_span(text, "thời tiết hôm nay", flat) is None


def test_rare_words_and_word_pairs_decide_the_answer():
    text = "Đảng viên học tập nghị quyết. Đảng viên tham gia hiến máu."
    weights = {"hien": 5.0, "mau": 5.0}
    start, end = answer_span(text, "đảng viên hiến máu", lambda w: weights.get(w, 1.0))
    assert text[start:end] == "Đảng viên tham gia hiến máu."


def test_highlights_ignore_case_and_accents():
    text = "ĐẢNG VIÊN và đảng viên"
    assert [text[a:b] for a, b in highlights(text, "dang vien")] == ["ĐẢNG", "VIÊN", "đảng", "viên"]


def test_the_most_frequent_words_are_not_highlighted_but_still_answer():
    text = "Mở đầu. Đảng bộ có 972 đảng viên mới."
    common = {"dang": MARK_MIN_WEIGHT / 2, "bo": MARK_MIN_WEIGHT / 2}
    annotation = Annotator("đảng bộ có bao nhiêu đảng viên", lambda w: common.get(w, MARK_MIN_WEIGHT))(text)
    assert [text[a:b] for a, b in annotation.marks] == ["viên"]
    assert text[slice(*annotation.answer)] == "Đảng bộ có 972 đảng viên mới."
    # the share of the query's weight the passage holds: all of it, then half
    assert annotation.matched == 1.0
    half = Annotator("đảng viên hiến máu", flat)("Đảng viên học tập.")
    assert half.matched == 0.5


@pytest.mark.parametrize(
    "query, key",
    [
        ("Đảng bộ Khối có bao nhiêu đảng viên?", "8.400 đảng viên"),
        ("dang bo khoi co bao nhieu dang vien", "8.400 đảng viên"),
        ("How many party members are there?", "152"),
        ("Đại hội diễn ra khi nào?", "ngày 29/5/2023"),
        ("When was the congress held?", "ngày 29/5/2023"),
        ("Ai phát biểu tại đại hội?", "Nguyễn Văn An"),
        ("Who spoke?", "Nguyễn Văn An"),
        ("Đảng bộ Khối làm gì?", None),  # asks for no number, date or name
    ],
)
def test_answer_key_is_what_the_question_asks_for(query, key):
    text = (
        "Toàn Đảng bộ có 152 đảng bộ với gần 8.400 đảng viên, "
        "đại hội khai mạc ngày 29/5/2023, đồng chí Nguyễn Văn An phát biểu."
    )
    span = answer_key(query, text, (0, len(text)))
    assert (text[slice(*span)] if span else None) == key


def test_answer_key_skips_what_the_question_already_says():
    text = "Năm 2020 Đảng bộ có 152 chi bộ."
    assert text[slice(*answer_key("Năm 2020 Đảng bộ có bao nhiêu chi bộ?", text, (0, len(text))))] == "152 chi bộ"
    # a run of capitals opening a sentence needs three words to be a name
    assert answer_key("ai?", "Toàn Đảng bộ họp.", (0, 17)) is None


def test_analyzer_terms():
    assert analyze("Đảng viên") == ["đảng", "viên", "~dang", "~vien", "~dang_vien"]


def test_accent_restoration_uses_the_corpus(tmp_path):
    texts = ["Đảng viên nâng cao chất lượng sinh hoạt chi bộ.", "Đảng viên đang học.", "Cái bàn đang ở đây."] * 3
    documents = [document_from_record(f"d{n}", {"text": text}, "test") for n, text in enumerate(texts)]
    build_from_documents(documents, tmp_path / "index", FakeEncoder(), progress=False)
    vocabulary = open_index(tmp_path / "index").accents
    assert vocabulary.restore("nang cao chat luong sinh hoat chi bo") == "nâng cao chất lượng sinh hoạt chi bộ"
    assert vocabulary.restore("ban dang o day") == "bàn đang ở đây"
    assert vocabulary.restore("bao nhieu dang vien") == "bao nhiêu đảng viên"  # question words built in
    assert vocabulary.restore("Đảng viên đang học") == "Đảng viên đang học"  # already accented: untouched
    assert vocabulary.restore("How many members were admitted") == "How many members were admitted"


def test_accent_restoration_weighs_each_word_by_what_follows_it(tmp_path):
    """A bigram language model: "bao" before "nhieu" is "bao" (the only pair the corpus has),
    although "bảo" is the commoner syllable and "nhiều dân" the commoner pair that follows; and a
    query is a question, so a trailing "o dau" asks where ("ở đâu") even where the corpus only
    says "at the head of" ("ở đầu")."""
    texts = (
        ["Thành phố có nhiều dân."] * 6
        + ["Lực lượng bảo vệ bảo đảm an ninh."] * 6
        + ["Hỏi bao nhiêu người cũng được."] * 2
        + ["Con đường nằm ở đầu làng."] * 4
    )
    documents = [document_from_record(f"d{n}", {"text": text}, "test") for n, text in enumerate(texts)]
    build_from_documents(documents, tmp_path / "index", FakeEncoder(), progress=False)
    vocabulary = open_index(tmp_path / "index").accents
    assert vocabulary.restore("co bao nhieu dan") == "có bao nhiêu dân"
    assert vocabulary.restore("con duong nam o dau") == "con đường nằm ở đâu"
    assert vocabulary.restore("bao ve an ninh") == "bảo vệ an ninh"


def test_restoration_follows_the_passages_a_query_matches(tmp_path):
    """The corpus mostly says "máu" (blood); a passage the query matches says "màu" (colour) and
    writes "Paris" with a capital, which a query typed without either takes from it. The query
    keeps its punctuation and the capitals it was typed with."""
    texts = ["Xét nghiệm máu của bệnh nhân."] * 3 + ["Bầu trời Paris hôm nay rất đẹp."] * 2
    documents = [document_from_record(f"d{n}", {"text": text}, "test") for n, text in enumerate(texts)]
    build_from_documents(documents, tmp_path / "index", FakeEncoder(), progress=False)
    vocabulary = open_index(tmp_path / "index").accents

    def nearby() -> list[str]:
        return ["Màu của bầu trời Paris thay đổi theo mùa."]

    def unread() -> list[str]:
        raise AssertionError("a query with diacritics and capitals needs no passages")

    assert vocabulary.restore("mau cua bau troi paris") == "máu của bầu trời paris"
    assert vocabulary.restore("mau cua bau troi paris?", nearby=nearby) == "màu của bầu trời Paris?"
    assert vocabulary.restore("Mau cua bau troi PARIS?", nearby=nearby) == "Màu của bầu trời PARIS?"
    assert vocabulary.restore("màu của bầu trời paris", nearby=nearby) == "màu của bầu trời Paris"
    assert vocabulary.restore("Màu của bầu trời paris", nearby=unread) == "Màu của bầu trời paris"


def test_capitals_are_read_beside_the_query_neighbours_and_not_opening_a_sentence():
    texts = [
        NearbyText.of(text)
        for text in (
            "Bệnh ở Việt Nam và ở nam giới. Nam giới ít hơn ở Khối các Cơ quan và GDP của Pháp: Hôm nay",
            "Ông nói: “Tôi đi.” Ở Hà Nội",
            "",
        )
    ]
    assert with_usual_capitals("gdp của pháp ở hà nội".split(), texts) == "GDP của Pháp ở Hà Nội".split()
    assert with_usual_capitals("việt nam và nam giới".split(), texts) == "Việt Nam và nam giới".split()
    assert with_usual_capitals("khối các cơ quan có cơ sở".split(), texts) == "Khối các Cơ quan có cơ sở".split()
    assert with_usual_capitals("ông nói tôi đi".split(), texts) == "ông nói tôi đi".split()


def test_english_whose_words_fold_like_vietnamese_is_not_read_as_vietnamese(tmp_path):
    """ "in", "to" and "an" are Vietnamese syllables too ("in", "tổ", "an"), so most words of an
    English query may be corpus words; its word pairs are not."""
    texts = ["Thế giới có tổ chức in ấn.", "An ninh là việc của tổ chức."] * 3
    documents = [document_from_record(f"d{n}", {"text": text}, "test") for n, text in enumerate(texts)]
    build_from_documents(documents, tmp_path / "index", FakeEncoder(), progress=False)
    vocabulary = open_index(tmp_path / "index").accents
    assert vocabulary.coverage("sign in to an app") == 0.0  # 3 of 5 words, none of 4 pairs
    assert vocabulary.restore("sign in to an app") == "sign in to an app"
    assert vocabulary.coverage("to chuc in an") == 1.0
    assert vocabulary.restore("to chuc in an") == "tổ chức in ấn"


def test_lexical_prefers_exact_accents_and_finds_unaccented_queries(tmp_path):

    from index.store.embedded.lexical import LexicalEntry, LexicalIndex

    texts = ["Các đảng viên họp chi bộ.", "Các đang viên họp chi bộ.", "Thời tiết hôm nay đẹp."]
    LexicalIndex.create(tmp_path)
    LexicalIndex.apply(
        tmp_path, (), [LexicalEntry(i, i, t, "vi", "d", None, None) for i, t in zip([10, 20, 30], texts)]
    )
    lexical = LexicalIndex.load(tmp_path)
    assert lexical.search("đảng viên", 3)[1].tolist() == [10, 20]
    assert lexical.search("đang viên", 3)[1].tolist() == [20, 10]
    assert sorted(lexical.search("dang vien", 3)[1].tolist()) == [10, 20]
    assert lexical.search("không có từ nào", 3)[1].size == 0
    assert LexicalIndex.load(tmp_path).search("đảng viên", 3)[1].tolist() == [10, 20]
    assert sorted(LexicalIndex.load(tmp_path).ids().tolist()) == [10, 20, 30]
