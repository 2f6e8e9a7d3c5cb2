from index.text import fold, folded_word_spans, normalize, query_terms, split_sentences


def test_normalize_composes_and_folds_whitespace():
    assert normalize("  Tie\u0302\u0301ng\t\nViệt  ") == "Tiếng Việt"


def test_fold_keeps_offsets_and_drops_diacritics():
    text = "ĐẢNG viên Tiếng Việt"
    assert fold(text) == "dang vien tieng viet"
    assert len(fold(text)) == len(text)


def test_split_sentences():
    assert split_sentences("Một câu. Hai câu! “Ba” câu? 4 là số.") == ["Một câu.", "Hai câu!", "“Ba” câu?", "4 là số."]
    assert split_sentences("Tỷ lệ 97,08%. đoạn thường") == ["Tỷ lệ 97,08%. đoạn thường"]


def test_query_terms_skip_stopwords_and_word_spans_keep_offsets():
    text = "Đảng viên và tỷ lệ"
    assert query_terms("chat luong dang vien va") == ["chat", "luong", "dang", "vien"]
    assert [(text[a:b], word) for a, b, word in folded_word_spans(text)] == [
        ("Đảng", "dang"),
        ("viên", "vien"),
        ("và", "va"),
        ("tỷ", "ty"),
        ("lệ", "le"),
    ]


def test_fold_table_agrees_with_fold_char():
    from index.text import fold_char

    sample = "ĐẢNG Viên Ắ ở ữ ÇÑÖ Σίσυφος Москва ＡＢ 한국어 漢字 İstanbul"
    assert fold(sample) == "".join(fold_char(c) if ord(c) < 0x3000 or 0xFF00 <= ord(c) < 0xFFF0 else c for c in sample)
    assert len(fold(sample)) == len(sample)
    assert fold("Σίσυφος Москва") == "σισυφος москва"
