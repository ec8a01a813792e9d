"""Khmer terms: the glossary (docs/glossary.km.md) holds, banned terms appear nowhere, and the
committed catalogue template is what the code extracts today."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "docs" / "glossary.km.md"
TRANSLATIONS = ROOT / "service" / "translations"
KHMER_PO = TRANSLATIONS / "km" / "LC_MESSAGES" / "messages.po"
TEMPLATE = TRANSLATIONS / "messages.pot"
KHMER = re.compile("[\u1780-\u17ff]")

# The glossary's "Never" column and its writing rules, as patterns. Each key is the form the
# glossary names (the test checks that it does), so the two cannot drift apart.
BANNED = {
    "ចំណុចត្រួតពិនិត្យ": re.compile("ចំណុចត្រួតពិនិត្យ"),
    "ភស្តុតាង": re.compile("ភស្តុតាង"),
    # A key is កូនសោ; ចាក់សោ (to lock) and សោះ (at all) are other words.
    "សោ": re.compile("(?<!កូន)(?<!ចាក់)សោ(?!ះ)"),
    "សំឡេង": re.compile("(?<!«)សំឡេង|សំឡេង(?!»)"),
    "ខេត្ត ឬក្រុង": re.compile("ខេត្ត ឬក្រុង"),
    "ឱ្យ": re.compile("ឱ្យ"),
    "ញត្តិនេះត្រូវបានបិទ": re.compile("ញត្តិនេះត្រូវបានបិទ"),
}
# English quotation marks on a line of Khmer text: Khmer uses « ».
ENGLISH_QUOTES = re.compile("[“”]")
MAX_PASSIVE_STRINGS = 3
# Where a Khmer reader can meet a term: the documents, the templates, the code's own strings.
SURFACES = ("docs", "templates", "service", "README.md", "SECURITY.md")
SUFFIXES = {".md", ".html", ".txt", ".css", ".py"}


@dataclass(frozen=True)
class Term:
    """A glossary row: the Khmer term a string must use when its English matches."""

    english: str
    khmer: str
    pattern: re.Pattern[str]


def glossary_terms() -> list[Term]:
    """The rows of the glossary's table of terms."""
    terms = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| ") or line.startswith(("| English", "|---")):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        english, khmer, pattern = cells[0], cells[1], cells[2].strip("`").replace("\\|", "|")
        terms.append(Term(english, khmer, re.compile(pattern, re.IGNORECASE)))
    return terms


@pytest.fixture(scope="module")
def khmer() -> Catalog:
    with KHMER_PO.open("rb") as handle:
        return read_po(handle)


def translations(catalog: Catalog) -> list[tuple[str, str]]:
    """(English, Khmer) for every message."""
    return [(str(m.id), str(m.string)) for m in catalog if m.id and isinstance(m.id, str)]


def khmer_surfaces() -> list[Path]:
    """Every file a Khmer term may appear in, but the glossary, which names the banned ones."""
    files: list[Path] = []
    for name in SURFACES:
        path = ROOT / name
        found = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [f for f in found if f.suffix in SUFFIXES and f != GLOSSARY]
    return files


def test_the_glossary_has_its_terms() -> None:
    terms = {term.english: term.khmer for term in glossary_terms()}
    assert terms["petition"] == "ញត្តិ" and terms["key"] == "កូនសោ"
    assert terms["checkpoint"] == "កំណត់ត្រាបញ្ជាក់"
    assert len(terms) >= 15
    text = GLOSSARY.read_text(encoding="utf-8")
    assert "Questions for a native-speaker review" in text
    for banned in BANNED:
        assert f"`{banned}`" in text or banned in text, f"the glossary does not name {banned!r}"


def test_each_concept_has_its_one_term(khmer: Catalog) -> None:
    problems = [
        f"{english!r} should say {term.khmer} ({term.english}): {text!r}"
        for term in glossary_terms()
        for english, text in translations(khmer)
        if term.pattern.search(english) and term.khmer not in text
    ]
    assert not problems, "\n".join(problems)


def test_code_means_only_the_receipt_code(khmer: Catalog) -> None:
    problems = [
        f"លេខកូដ for something else than a receipt code: {english!r}"
        for english, text in translations(khmer)
        if "លេខកូដ" in text and "receipt" not in english.lower()
    ]
    assert not problems, "\n".join(problems)


def test_no_banned_term_in_the_catalogue(khmer: Catalog) -> None:
    problems = [
        f"{name!r} in the translation of {english!r}"
        for english, text in translations(khmer)
        for name, pattern in BANNED.items()
        if pattern.search(text)
    ]
    problems += [
        f"“ ” in the translation of {english!r}: Khmer quotes are « »"
        for english, text in translations(khmer)
        if ENGLISH_QUOTES.search(text)
    ]
    assert not problems, "\n".join(problems)


def test_no_banned_term_in_templates_docs_or_code() -> None:
    problems = []
    for path in khmer_surfaces():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not KHMER.search(line):
                continue
            where = f"{path.relative_to(ROOT)}:{number}"
            problems += [f"{where}: {name!r}" for name, p in BANNED.items() if p.search(line)]
            if path.name.endswith(".km.md") and ENGLISH_QUOTES.search(line):
                problems.append(f"{where}: “ ” (Khmer quotes are « »)")
    assert not problems, "\n".join(problems)


def test_few_passives(khmer: Catalog) -> None:
    passive = [english for english, text in translations(khmer) if "ត្រូវបាន" in text]
    assert len(passive) <= MAX_PASSIVE_STRINGS, "ត្រូវបាន in:\n" + "\n".join(passive)


def test_the_banned_patterns_catch_what_they_should() -> None:
    assert BANNED["សោ"].search("ដោយសោខាងក្រោម")
    assert not BANNED["សោ"].search("ចាក់សោដោយកូនសោរបស់អ្នក គ្មានអ្វីសោះ")
    assert BANNED["សំឡេង"].search("របៀបដែលសំឡេងការពារអ្នក")
    assert not BANNED["សំឡេង"].search("របៀបដែល «សំឡេង» ការពារអ្នក")


def test_the_committed_template_is_up_to_date(tmp_path: Path) -> None:
    """messages.pot holds exactly the strings the code and templates ask to translate."""
    extracted = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    # The same command as `make extract`.
    subprocess.run(
        [str(pybabel), "extract", "-F", "babel.cfg", "-k", "lazy_gettext", "--no-location",
         "--sort-output", "-o", str(extracted), "."],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    with extracted.open("rb") as handle:
        fresh = {m.id for m in read_po(handle) if m.id}
    with TEMPLATE.open("rb") as handle:
        committed = {m.id for m in read_po(handle) if m.id}
    hint = "run `make extract` and translate the new strings"
    assert not sorted(fresh - committed), f"missing from messages.pot ({hint})"
    assert not sorted(committed - fresh), f"no longer in the code ({hint})"
