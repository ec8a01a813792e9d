"""The Khmer catalogue: complete, in Khmer, placeholders intact, in step with the template."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parents[2] / "service" / "translations"
TEMPLATE = TRANSLATIONS / "messages.pot"
KHMER_PO = TRANSLATIONS / "km" / "LC_MESSAGES" / "messages.po"

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
KHMER = re.compile("[\u1780-\u17ff]")
# Messages that are only a proper name and may stay in Latin script. There should be none:
# even "Samleng" is rendered as «សំឡេង».
PROPER_NAMES: frozenset[str] = frozenset()
# Names that must reach the reader exactly as Tor Browser shows them.
KEPT_VERBATIM = ("Tor Browser", "JavaScript", "Safest")
FIX_HINT = "run `make extract`, then translate the new strings in {po}"


def _read(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle)


def _texts(value: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _messages(catalog: Catalog) -> list[Message]:
    return [message for message in catalog if message.id]


def _key(message: Message) -> str:
    return _texts(message.id)[0]


@pytest.fixture(scope="module")
def khmer() -> Catalog:
    return _read(KHMER_PO)


def test_header(khmer: Catalog) -> None:
    assert not khmer.fuzzy, "remove the '#, fuzzy' flag from the catalogue header"
    assert str(khmer.locale) == "km"
    assert khmer.plural_forms == "nplurals=1; plural=0;"


def test_every_message_is_translated_into_khmer(khmer: Catalog) -> None:
    messages = _messages(khmer)
    assert messages, f"no messages in {KHMER_PO}"
    problems: list[str] = []
    for message in messages:
        key = _key(message)
        translations = _texts(message.string)
        if message.fuzzy:
            problems.append(f"fuzzy (check it, then remove '#, fuzzy'): {key!r}")
        if not translations or not all(text.strip() for text in translations):
            problems.append(f"not translated: {key!r}")
            continue
        wanted = set().union(*(PLACEHOLDER.findall(text) for text in _texts(message.id)))
        for text in translations:
            found = set(PLACEHOLDER.findall(text))
            if found != wanted:
                problems.append(
                    f"placeholders differ in {key!r}: expected {sorted(wanted)}, "
                    f"found {sorted(found)}"
                )
            if key not in PROPER_NAMES and not KHMER.search(text):
                problems.append(f"no Khmer in the translation of {key!r}: {text!r}")
            for term in KEPT_VERBATIM:
                if term in key and term not in text:
                    problems.append(f"{term!r} must stay as it is in the translation of {key!r}")
    assert not problems, f"{KHMER_PO}:\n" + "\n".join(problems)


def test_catalogue_matches_the_template(khmer: Catalog) -> None:
    template_ids = {_key(message) for message in _messages(_read(TEMPLATE))}
    khmer_ids = {_key(message) for message in _messages(khmer)}
    hint = FIX_HINT.format(po=KHMER_PO.relative_to(TRANSLATIONS.parents[1]))
    missing = sorted(template_ids - khmer_ids)
    assert not missing, "strings without a Khmer translation; " + hint + ":\n" + "\n".join(missing)
    stale = sorted(khmer_ids - template_ids)
    assert not stale, "strings no longer in the template; " + hint + ":\n" + "\n".join(stale)


def test_compiled_catalogue_loads_and_formats(khmer: Catalog, tmp_path: Path) -> None:
    compiled = tmp_path / "messages.mo"
    with compiled.open("wb") as handle:
        write_mo(handle, khmer)
    with compiled.open("rb") as handle:
        translations = gettext.GNUTranslations(handle)

    expected = khmer.get("Sign")
    assert expected is not None, "the catalogue should translate the button label 'Sign'"
    sign = translations.gettext("Sign")
    assert sign == expected.string
    assert sign != "Sign" and KHMER.search(sign)

    for message in _messages(khmer):
        key = _key(message)
        names = {match[2:-2] for match in PLACEHOLDER.findall(key)}
        if names:
            rendered = translations.gettext(key) % dict.fromkeys(names, 7)
            assert "7" in rendered and "%" not in rendered, rendered
