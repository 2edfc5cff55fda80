"""The README's figures are the ones the committed results and shipped weights give."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "valid"
sys.path.insert(0, str(ROOT / "scripts"))


def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_readme_holds_the_bd_rate_tables_of_the_committed_results():
    tables = (RESULTS / "bd-rate.md").read_text().strip()
    assert tables in readme()


def test_readme_holds_the_tables_of_the_shipped_models():
    from licodec.zoo.registry import SHIPPED, VARIABLE_RATE_MODEL, shipped_path
    import zoo_table
    checked = 0
    if shipped_path(VARIABLE_RATE_MODEL).exists():  # the default model, on both folders
        for folder in (RESULTS, RESULTS.parent / "valid-photo"):
            assert zoo_table.table(folder / "licodec.json") in readme()
            checked += 1
    if all(shipped_path(name).exists() for name in SHIPPED.values()):
        assert zoo_table.table(RESULTS / "licodec-bls2017.json") in readme()
        checked += 1
    if not checked:
        pytest.skip("a build without the shipped weights")


def test_the_table_names_the_earlier_lambdas_of_a_resumed_run():
    import zoo_table
    assert zoo_table.lmbda({"lmbda": 0.06}) == "0.06"
    info = {"lmbda": 0.06, "changes": [{"until_step": 8000, "lmbda": 0.075}, {"until_step": 9000, "quantizer": "noise"}]}
    assert zoo_table.lmbda(info) == "0.06 (0.075 for its first 8,000 steps)"
