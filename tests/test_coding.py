import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from licodec.coding import CodingTables, decode, encode, quantize_pmf
from licodec.errors import BitstreamError, ModelError

I32 = np.iinfo(np.int32)


def laplace_tables(channels: int, half: int = 8, precision: int = 16) -> CodingTables:
    rows = []
    for c in range(channels):
        v = np.arange(-half, half + 1)
        pmf = np.exp(-np.abs(v) / (0.5 + c % 4))
        rows.append(quantize_pmf(np.concatenate([pmf / pmf.sum() * (1 - 1e-6), [1e-6]]), precision))
    return CodingTables.from_rows(rows, offsets=np.full(channels, -half), precision=precision)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(pmf=arrays(np.float64, st.integers(2, 300), elements=st.floats(0, 1e6)),
       precision=st.integers(10, 16))
def test_quantize_pmf_gives_valid_rows(pmf, precision):
    if pmf.sum() <= 0:
        pmf[0] = 1.0
    freq = quantize_pmf(pmf, precision)
    assert freq.dtype == np.int32 and freq.shape == pmf.shape
    assert freq.min() >= 1
    assert int(freq.sum()) == 1 << precision


def test_quantize_pmf_follows_the_pmf():
    pmf = np.array([0.5, 0.25, 0.125, 0.125])
    assert quantize_pmf(pmf, 16).tolist() == [32767, 16384, 8193, 8192]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.data(), channels=st.integers(1, 5), n=st.integers(0, 60))
def test_round_trip_is_exact_for_any_int32_values(data, channels, n):
    tables = laplace_tables(channels)
    values = data.draw(arrays(np.int32, (channels, n), elements=st.one_of(
        st.integers(-12, 12), st.integers(I32.min, I32.max), st.sampled_from([I32.min, I32.max, 0]))))
    payload = encode(values, tables)
    assert np.array_equal(decode(payload, tables, n), values)


def test_round_trip_large_random_latents_with_extremes(rng):
    tables = laplace_tables(16)
    values = np.round(rng.laplace(0, 3, (16, 5000))).astype(np.int32)
    values[0, :4] = [I32.min, I32.max, 10**6, -(10**6)]
    values[5] = 9  # a whole channel just outside the table: all escapes
    out = decode(encode(values, tables), tables, values.shape[1])
    assert np.array_equal(out, values)


def test_coded_size_is_close_to_the_information_content(rng):
    tables = laplace_tables(4)
    values = np.empty((4, 20000), dtype=np.int32)
    bits = 0.0
    for c in range(4):
        p = tables.freqs[c, : tables.lengths[c] - 1] / 65536.0
        idx = rng.choice(p.size, size=20000, p=p / p.sum())
        values[c] = idx + tables.offsets[c]
        bits += -np.log2(p[idx]).sum()
    coded = 8 * len(encode(values, tables))
    assert bits <= coded <= bits * 1.01 + 64


def test_encoding_is_deterministic(rng):
    tables = laplace_tables(3)
    values = rng.integers(-20, 20, (3, 500)).astype(np.int32)
    assert encode(values, tables) == encode(values.copy(), tables)


def test_truncated_or_garbage_payload_never_hangs_and_raises_or_differs(rng):
    tables = laplace_tables(3)
    values = rng.integers(-20, 20, (3, 400)).astype(np.int32)
    payload = encode(values, tables)
    for cut in (1, 4, len(payload) // 2, len(payload) - 4):
        try:
            out = decode(payload[:cut], tables, 400)
        except BitstreamError:
            continue
        assert out.shape == values.shape and out.dtype == np.int32
        if cut <= len(payload) // 2:  # the final word may be redundant, half the stream is not
            assert not np.array_equal(out, values)
    with pytest.raises(BitstreamError):
        decode(payload + b"\x01\x02\x03\x04" * 8, tables, 400)
    with pytest.raises(BitstreamError):
        decode(payload[:-1], tables, 400)


def test_tables_are_validated():
    good = laplace_tables(2)
    bad = good.freqs.copy()
    bad[0, 0] += 1
    with pytest.raises(ModelError, match="sum"):
        CodingTables(bad, good.lengths.copy(), good.offsets.copy(), 16)
    with pytest.raises(ModelError, match="int32"):
        CodingTables(good.freqs.astype(np.int64), good.lengths.copy(), good.offsets.copy(), 16)
    zero = good.freqs.copy()
    zero[1, 3], zero[1, 4] = 0, zero[1, 4] + zero[1, 3]
    with pytest.raises(ModelError, match=">= 1"):
        CodingTables(zero, good.lengths.copy(), good.offsets.copy(), 16)
    assert CodingTables.from_arrays(good.to_arrays()).digest() == good.digest()


def test_payload_shorter_than_its_information_content_is_refused_before_decoding(rng):
    tables = laplace_tables(4)
    values = rng.integers(-3, 4, (4, 3000)).astype(np.int32)
    payload = encode(values, tables)
    from licodec.coding.range_coder import min_payload_bits
    assert min_payload_bits(tables, np.repeat(np.arange(4), 3000)) <= 8 * len(payload)
    with pytest.raises(BitstreamError, match="too short"):
        decode(payload, tables, 3000 * 1000)


@pytest.mark.parametrize("n_tables", [3, 64, 256, 257, 70000])
def test_symbols_are_grouped_by_table_in_the_order_of_an_int64_stable_sort(n_tables):
    """The coder sorts on the narrowest key type (a radix sort); the order, and so the
    bytes, must be those of a stable sort of the int64 indexes."""
    from licodec.coding.range_coder import _groups
    idx = np.random.default_rng(n_tables).integers(0, n_tables, 5000).astype(np.int64)
    order, bounds = _groups(idx, n_tables)
    np.testing.assert_array_equal(order, np.argsort(idx, kind="stable"))
    np.testing.assert_array_equal(np.diff(bounds), np.bincount(idx, minlength=n_tables))


def _three_tables():
    """Three tables objects of one shape: wide, narrow and steep rows."""
    wide, narrow = laplace_tables(4), laplace_tables(4, half=3)
    steep = CodingTables(np.ascontiguousarray(wide.freqs[::-1]), wide.lengths[::-1].copy(),
                         wide.offsets.copy(), wide.precision)
    values = np.random.default_rng(5).integers(-3, 4, (4, 300)).astype(np.int32)
    return {"wide": wide, "narrow": narrow, "steep": steep}, values


def test_bytes_do_not_depend_on_the_tables_coded_before():
    """The coder keeps the range coder's model of each row with its tables object; what
    one tables object codes must not depend on which others were used before, in this
    process or in a fresh one that codes them in the other order."""
    import subprocess
    import sys
    from pathlib import Path
    script = ("from tests.test_coding import _three_tables, encode\n"
              "tables, values = _three_tables()\n"
              "for name in ('steep', 'narrow', 'wide'):\n"
              "    print(name, encode(values, tables[name]).hex())\n")
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[1]).stdout.split()
    fresh = dict(zip(fresh[::2], fresh[1::2]))
    tables, values = _three_tables()
    here = {name: encode(values, tables[name]).hex() for name in ("wide", "narrow", "steep")}
    assert here == fresh and len(set(here.values())) == 3
    copy = CodingTables(tables["wide"].freqs.copy(), tables["wide"].lengths.copy(),
                        tables["wide"].offsets.copy(), tables["wide"].precision)
    assert encode(values, copy).hex() == here["wide"]
    for t in tables.values():
        assert np.array_equal(decode(encode(values, t), t, 300), values)


@pytest.mark.parametrize("block", [1, 7, 64])
def test_bytes_do_not_depend_on_how_many_symbols_are_prepared_at_once(rng, monkeypatch, block):
    """Large images are coded in runs of tables (BLOCK_SYMBOLS): the runs must not show
    in the stream, with escapes and empty tables among them."""
    from licodec.coding import range_coder
    tables = laplace_tables(6)
    values = np.round(rng.laplace(0, 4, (6, 50))).astype(np.int32)
    values[2, :3] = [I32.min, 40, -(10**5)]
    indexes = rng.choice([0, 1, 2, 4, 5], size=values.size).astype(np.int32)  # table 3 unused
    whole = range_coder.encode_indexed(values.reshape(-1), indexes, tables)
    monkeypatch.setattr(range_coder, "BLOCK_SYMBOLS", block)
    assert range_coder.encode_indexed(values.reshape(-1), indexes, tables) == whole
    assert np.array_equal(range_coder.decode_indexed(whole, indexes, tables), values.reshape(-1))
