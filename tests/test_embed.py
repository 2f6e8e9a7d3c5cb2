import numpy as np

from index.embed import choose_precision, unit_rows


def test_precision_follows_the_cpu():
    assert choose_precision("auto", {"avx2", "avx512_bf16"}) == "bf16"
    assert choose_precision("auto", {"amx_bf16", "amx_tile"}) == "bf16"
    assert choose_precision("auto", {"avx2", "avx512f"}) == "fp32"
    assert choose_precision("fp32", {"avx512_bf16"}) == "fp32"


def test_unit_rows_renormalise_in_float32():
    rows = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float16))
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows[0], [0.6, 0.8])
    assert np.all(np.isfinite(rows))
