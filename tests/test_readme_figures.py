"""The README's measured figures are the ones in benchmarks/results/ (benchmarks/figures.py writes them)."""

from __future__ import annotations

import json
import re

import pytest

from benchmarks import figures


@pytest.mark.parametrize("doc", figures.DOCS, ids=lambda p: p.name)
def test_marked_figures_equal_the_benchmark_results(doc):
    text = doc.read_text()
    for match in figures.MARKER.finditer(text):
        name, shown = match.group("name"), match.group("value")
        assert name in figures.FIGURES, f"{doc.name}: unknown figure {name!r}"
        assert shown == figures.FIGURES[name](), (
            f"{doc.name} says {shown!r} for {name}, benchmarks/results/ say {figures.FIGURES[name]()!r}: "
            "run `python -m benchmarks.figures`")


def test_every_figure_is_shown_and_a_changed_result_is_caught(tmp_path, monkeypatch):
    shown = {m.group("name") for doc in figures.DOCS for m in figures.MARKER.finditer(doc.read_text())}
    assert shown == set(figures.FIGURES)
    # a new benchmark run that measured something else: the README would now be out of date
    (tmp_path / "learned_cpu.txt").write_text(
        re.sub(r"(256\^2 interactive\s+erosion light\s*: median\s+)[\d.]+", r"\g<1>0.777",
               (figures.RESULTS / "learned_cpu.txt").read_text()))
    for other in figures.RESULTS.iterdir():
        if other.name != "learned_cpu.txt":
            (tmp_path / other.name).write_text(other.read_text())
    monkeypatch.setattr(figures, "RESULTS", tmp_path)
    readme = figures.ROOT / "README.md"
    assert figures.render(readme.read_text()) != readme.read_text()
    assert "<!--fig:learned_256_interactive-->0.78 s<!--/fig-->" in figures.render(readme.read_text())


def test_a_changed_report_is_caught(tmp_path, monkeypatch):
    """Report figures (reports/*/results JSON) are checked as the benchmarks' are."""
    (tmp_path / "voxel_memory").mkdir()
    summary = json.loads((figures.REPORTS / "voxel_memory" / "summary.json").read_text())
    summary["rich_poor"]["served"] = 9.876
    (tmp_path / "voxel_memory" / "summary.json").write_text(json.dumps(summary))
    monkeypatch.setattr(figures, "REPORTS", tmp_path)
    assert figures.FIGURES["voxel_memory_rich_poor"]() == "9.88"


def test_stale_statements_are_gone():
    readme = (figures.ROOT / "README.md").read_text()
    for stale in ("procedural baseline now", "0.5-0.56 s", "~16 s", "~320 CPU s", "python -m backend serve"):
        assert stale not in readme, stale
