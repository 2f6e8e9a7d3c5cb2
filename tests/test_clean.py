"""Boilerplate removal on the five seed articles: exactly what is dropped, and why."""

import pytest

from index.ingest.clean import clean_article, parse_date
from tests.conftest import CORPUS


def clean(name: str):
    return clean_article((CORPUS / name).read_text(encoding="utf-8").splitlines())


def assert_dropped(article, expected: list[tuple[str, str]]) -> None:
    """Same reasons, and each dropped line starts with the expected text."""
    actual = sorted(article.dropped)
    assert [r for r, _ in actual] == [r for r, _ in sorted(expected)]
    for (reason, text), (_, prefix) in zip(actual, sorted(expected)):
        assert text.startswith(prefix), (reason, text, prefix)


EXPECTED = {
    "000_3c2f5f3f6056e9aa.txt": dict(
        title="Chi bộ Hội Liên hiệp Phụ nữ tỉnh: Điển hình trong thi đua “Đồng khởi mới”",
        date="2023-06-05",
        byline="Phạm Tuyết",
        source=None,
        dropped=[
            ("date", "05/06/2023 - 05:25"),
            ("repeated", "Xây dựng tổ chức hội vững mạnh, hỗ trợ p"),
            ("widget", "Chia sẻ bài viết"),
            ("widget", "BÌNH LUẬN"),
            ("byline", "Bài, ảnh: Phạm Tuyết"),
        ],
    ),
    "001_6be4adc9d2e6dd3d.txt": dict(
        title="Phát huy vai trò của các tổ chức chính trị - xã hội trong công tác xây dựng Đảng tại Đảng bộ Sở Nội vụ",
        date=None,
        byline="Bùi Văn Tuấn, Chánh Văn phòng Sở Nội vụ",
        source=None,
        dropped=[
            ("counter", "Lượt xem: 24"),
            ("caption", "Ảnh: Đồng chí Hoàng Lê Duy, Bí thư Chi đo"),
            ("widget", "web basic 2x"),
            ("byline", "Tin, bài, ảnh: Bùi Văn Tuấn, Chánh Văn p"),
        ],
    ),
    "002_0538a5d340dbff31.txt": dict(
        title="Thi đua làm theo lời Bác ở Đảng bộ Khối các cơ quan tỉnh",
        date="2021-09-28",
        byline="Đ.V",
        source=None,
        dropped=[
            ("weather", "20 C"),
            ("weather", "New York"),
            ("date", "Thứ Ba, Tháng Chín 28, 2021"),
            ("advert", "- Advertisement -"),
            ("advert", "- Advertisement -"),
            ("advert", "- Advertisement -"),
            ("advert", "- Advertisement -"),
            ("widget", "bài liên quan"),
            ("widget", "BÌNH LUẬN"),
            ("widget", "Vui lòng nhập bình luận của bạn"),
            ("widget", "Vui lòng nhập tên của bạn ở đây"),
            ("widget", "kết nối"),
            ("counter", "66,540Thành viênThích"),
            ("counter", "281Người theo dõiTheo dõi"),
            ("counter", "21,400Người theo dõiĐăng Ký"),
            ("advert", "- Advertisement -"),
            ("widget", "bài mới"),
            ("advert", "- Advertisement -"),
            ("widget", "được quan tâm"),
            ("byline", "Đ.V"),
            ("repeated", "Thi đua làm theo lời Bác ở Đảng bộ Khối c"),
        ],
    ),
    "003_0999d6c42f2546d5.txt": dict(
        title="ĐẢNG ỦY KHỐI CƠ QUAN VÀ DOANH NGHIỆP TỈNH TIỀN GIANG: "
        "Chú trọng đổi mới, nâng cao chất lượng sinh hoạt chi bộ",
        date="2023-09-18",
        byline="LÊ NGUYÊN",
        source=None,
        dropped=[
            ("date", "Thứ Hai, 18/09/2023, 09:27 (GMT+7)"),
            ("punctuation", "."),
            ("repeated", "Quang cảnh Hội nghị sơ kết 5 năm thực hi"),
            ("punctuation", "."),
            ("punctuation", "."),
            ("punctuation", "."),
            ("byline", "LÊ NGUYÊN"),
        ],
    ),
    "004_c56b2237f7a02537.txt": dict(
        title=(
            "Kỷ niệm Ngày thành lập Đảng bộ Khối Các cơ quan và Doanh nghiệp tỉnh (1/6/2020): Tiếp tục đổi mới, "
            "nâng cao chất lượng công tác xây dựng Đảng, lãnh đạo thực hiện thắng lợi nhiệm vụ chính trị được giao"
        ),
        date="2023-05-29",
        byline="Vũ Hữu Thi - TUV, Bí thư Đảng ủy Khối các Cơ quan và Doanh nghiệp tỉnh",
        source="Báo Nam Định",
        dropped=[
            ("date", "Thứ 2, Ngày 29 / 05 / 2023"),
            ("caption", "Thành phố Nam Định hôm nay. (Ảnh: Viết D"),
            ("widget", "Video hoạt độngHình ảnh hoạt động"),
            ("widget", "Website liên kết"),
            ("source", "(Nguồn: Báo Nam Định)"),
            ("byline", "Vũ Hữu Thi - TUV, Bí thư Đảng ủy Khối các"),
            ("repeated", "Kỷ niệm Ngày thành lập Đảng bộ Khối Các c"),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seed_cleaning(name):
    article = clean(name)
    expected = EXPECTED[name]
    assert (article.title, article.date, article.byline, article.source) == (
        expected["title"],
        expected["date"],
        expected["byline"],
        expected["source"],
    )
    assert_dropped(article, expected["dropped"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_content_survives(name):
    """Every substantial paragraph of the source is kept once, unless it repeats the title."""
    article = clean(name)
    kept = [b.text for b in article.blocks]
    repeats = {text for reason, text in article.dropped if reason == "repeated"}
    raw_paragraphs = {" ".join(line.split()) for line in (CORPUS / name).read_text(encoding="utf-8").splitlines()}
    for paragraph in raw_paragraphs:
        if len(paragraph) > 200 and paragraph not in repeats:
            assert kept.count(paragraph) == 1, paragraph[:60]


def test_headings_are_blocks_of_their_own():
    article = clean("003_0999d6c42f2546d5.txt")
    headings = [b.text for b in article.blocks if b.kind == "heading"]
    assert headings == ["TRIỂN KHAI NGHIÊM TÚC, HIỆU QUẢ", "NHIỆM VỤ TRỌNG TÂM HÀNG ĐẦU"]


@pytest.mark.parametrize(
    "line, iso",
    [
        ("05/06/2023 - 05:25", "2023-06-05"),
        ("Thứ Ba, Tháng Chín 28, 2021", "2021-09-28"),
        ("Thứ Hai, 18/09/2023, 09:27 (GMT+7)", "2023-09-18"),
        ("Thứ 2, Ngày 29 / 05 / 2023", "2023-05-29"),
        ("Chủ nhật, ngày 3 tháng 12 năm 2023", "2023-12-03"),
        ("Thứ Sáu, Tháng Mười Hai 1, 2023", "2023-12-01"),
    ],
)
def test_vietnamese_date_formats(line, iso):
    assert parse_date(line) == iso


@pytest.mark.parametrize(
    "line", ["Ngày 32/13/2023", "Kế hoạch số 01/KH-CB ngày 22-2-2021 và Kế hoạch số 217/KH-BTV ngày 23-3-2021"]
)
def test_not_dates(line):
    assert parse_date(line) is None
