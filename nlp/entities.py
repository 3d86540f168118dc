"""Named entities (thực thể) and province relevance (mức liên quan đến tỉnh).

Locations come from a gazetteer of Vietnam's administrative units built from underthesea's
``convert_address`` data (63 old → 34 new provinces, effective 2025-07-01): old and new names link
to the new province, so "Bình Phước" and "Đồng Xoài" both link to "Đồng Nai". Organisations are
provincial agencies ("UBND tỉnh …", "Sở Y tế …") and the analysts' watchlist (``gazetteer.yaml``).
People come from a fast surname pattern over the whole text and, optionally, underthesea's CRF NER
run on title + lead only (it costs ~10 ms per sentence, and importing underthesea ~1 s — done lazily).

Matching is a longest-match lookup of syllable sequences in a dict (a phrase matcher without
spaCy): cheap enough to run on every document.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml

from nlp.langid import is_vietnamese_syllable
from nlp.normalize import normalize_tone_marks
from schema.document import Entity

GAZETTEER_PATH = Path(__file__).with_name("gazetteer.yaml")
_TOKEN_RE = re.compile(r"\w+", re.UNICODE)
_SENTENCE_RE = re.compile(r"[^.!?;\n]+[.!?;]*", re.UNICODE)
_MAX_PHRASE = 7
#: Words that may stay lower-case inside a place name ("thành phố Hồ Chí Minh").
_SCOPE_WORDS = frozenset({"tỉnh", "thành", "phố", "tp", "thủ", "đô", "huyện", "quận", "thị", "xã", "châu"})
_SCOPES: tuple[tuple[str, ...], ...] = (
    ("thành", "phố"),
    ("thị", "xã"),
    ("thị", "trấn"),
    ("tỉnh",),
    ("tp",),
    ("huyện",),
    ("quận",),
    ("xã",),
    ("phường",),
)
_DISTRICT_PREFIXES = ("Thành phố ", "Thị xã ", "Quận ", "Huyện ")
_WARD_PREFIXES = ("Phường ", "Xã ", "Thị trấn ", "Đặc khu ")
_HEAD_CANONICAL = {"ủy ban nhân dân": "UBND", "hội đồng nhân dân": "HĐND"}
#: Common Vietnamese family names (họ), for the person pattern.
SURNAMES = frozenset(
    [
        "Nguyễn",
        "Trần",
        "Lê",
        "Phạm",
        "Hoàng",
        "Huỳnh",
        "Phan",
        "Vũ",
        "Võ",
        "Đặng",
        "Bùi",
        "Đỗ",
        "Hồ",
        "Ngô",
        "Dương",
        "Lý",
        "Đào",
        "Đoàn",
        "Vương",
        "Trịnh",
        "Trương",
        "Lâm",
        "Phùng",
        "Mai",
        "Tô",
        "Hà",
        "Tạ",
        "Lương",
        "Đinh",
        "Châu",
        "Thái",
        "Quách",
        "Cao",
        "Kiều",
        "Lưu",
        "Văn",
        "Đàm",
        "Lại",
        "Tăng",
        "Hứa",
        "Triệu",
    ]
)
#: Words before a person's name that make it the name of a street, school, bridge… (đường Nguyễn Huệ).
_NAMED_AFTER_CUES = frozenset(
    {
        "đường",
        "phố",
        "phường",
        "xã",
        "quận",
        "huyện",
        "trường",
        "cầu",
        "chợ",
        "hẻm",
        "ngõ",
        "thpt",
        "thcs",
        "lộ",
    }
)
_PERSON_CUES = frozenset({"ông", "bà", "anh", "chị", "em", "cháu", "cụ", "đồng", "chí"})


@dataclass(frozen=True)
class _Phrase:
    label: str
    canonical: str
    kind: str  # "province" | "district" | "watch" | "place"


@dataclass(frozen=True)
class Mention:
    """An entity occurrence with its character span in the normalised text."""

    text: str
    label: str
    canonical: str
    start: int
    end: int
    province: str | None = None  # the (new) province this mention points at, if any
    place_start: int | None = None  # for an agency ORG ("UBND tỉnh Bình Phước"): where the place starts


def _key(phrase: str) -> tuple[str, ...]:
    return tuple(t.lower() for t in _TOKEN_RE.findall(normalize_tone_marks(phrase)))


def _address_data() -> dict[str, Any]:
    spec = find_spec("underthesea")
    if spec is None or spec.origin is None:
        raise RuntimeError("underthesea is not installed; it ships the administrative-unit data we need")
    path = Path(spec.origin).parent / "address" / "data" / "mapping.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@dataclass
class Gazetteer:
    """Surface form (as a syllable tuple) → entity, plus agency heads for ORG patterns."""

    phrases: dict[tuple[str, ...], _Phrase] = field(default_factory=dict)
    agency_heads: dict[tuple[str, ...], str] = field(default_factory=dict)
    provinces: set[str] = field(default_factory=set)
    #: new province → its old names and aliases (for users configuring a province).
    province_names: dict[str, set[str]] = field(default_factory=dict)
    #: every old/new province short name → its new province.
    province_lookup: dict[str, str] = field(default_factory=dict)
    #: first syllables of all phrases: most tokens are not, so matching skips them at once.
    first_tokens: set[str] = field(default_factory=set)
    #: ward/commune names (old and new, without "Phường"/"Xã"/"Thị trấn") → their new provinces.
    wards: dict[tuple[str, ...], set[str]] = field(default_factory=dict)

    def add(self, surface: str, phrase: _Phrase) -> None:
        key = _key(surface)
        if key and len(key) <= _MAX_PHRASE:
            self.phrases.setdefault(key, phrase)
            self.first_tokens.add(key[0])
            if phrase.kind == "province":
                self.province_names.setdefault(phrase.canonical, set()).add(surface)

    def canonical_province(self, name: str) -> str | None:
        """New province for any old/new province or district name (``Bình Phước`` → ``Đồng Nai``)."""
        if name in self.province_lookup:
            return self.province_lookup[name]
        hit = self.phrases.get(_key(name))
        return hit.canonical if hit and hit.kind in ("province", "district") else None


def build_gazetteer(extra_path: Path | None = GAZETTEER_PATH) -> Gazetteer:
    """Gazetteer from underthesea's 2025 address mapping plus the editable ``gazetteer.yaml``."""
    data = _address_data()
    gaz = Gazetteer()
    new_short = {key: info["short"] for key, info in data["province_names"].items()}
    gaz.provinces = set(new_short.values())
    for info in data["province_names"].values():
        phrase = _Phrase("LOC", info["short"], "province")
        gaz.province_lookup[info["short"]] = info["short"]
        if info["short"] != "Hồ Chí Minh":  # bare "Hồ Chí Minh" is usually the president, not the city
            gaz.add(info["short"], phrase)
        gaz.add(info["name"], phrase)
    for old_key, info in data["old_province_names"].items():
        canonical = new_short[data["province_mapping"][old_key]]
        phrase = _Phrase("LOC", canonical, "province")
        gaz.province_lookup[info["short"]] = canonical
        if info["short"] != "Hồ Chí Minh":
            gaz.add(info["short"], phrase)
        gaz.add(info["name"], phrase)
    # Old districts (huyện/thị xã/thành phố thuộc tỉnh): keep names that point at one province only.
    districts: dict[str, set[str]] = {}
    for record in data["ward_mapping"]:
        for ward in (record["old_ward"], record["new_ward"]):
            for prefix in _WARD_PREFIXES:
                if ward.startswith(prefix):
                    ward = ward[len(prefix) :]
                    break
            gaz.wards.setdefault(_key(ward), set()).add(new_short[record["new_province_key"]])
        name = record["old_district"]
        for prefix in _DISTRICT_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        if any(ch.isdigit() for ch in name) or len(_key(name)) < 2:
            continue
        districts.setdefault(name, set()).add(new_short[record["new_province_key"]])
    for name, targets in districts.items():
        if len(targets) == 1 and _key(name) not in gaz.phrases:
            gaz.add(name, _Phrase("LOC", next(iter(targets)), "district"))
    if extra_path is not None and extra_path.exists():
        _add_user_entries(gaz, yaml.safe_load(extra_path.read_text(encoding="utf-8")) or {}, extra_path)
    return gaz


def _add_user_entries(gaz: Gazetteer, raw: dict[str, Any], path: Path) -> None:
    for name, aliases in (raw.get("province_aliases") or {}).items():
        canonical = gaz.canonical_province(name)
        if canonical is None:
            raise ValueError(f"{path}: province_aliases key {name!r} is not a known province name")
        for alias in aliases or []:
            gaz.add(alias, _Phrase("LOC", canonical, "province"))
    for place in raw.get("places") or []:
        # Countries, continents, regions: LOC when written as a name (capitalised).
        gaz.add(str(place), _Phrase("LOC", normalize_tone_marks(str(place)), "place"))
    for head in raw.get("agency_heads") or []:
        text = normalize_tone_marks(str(head))
        gaz.agency_heads[_key(text)] = _HEAD_CANONICAL.get(text.lower(), text)
    for entry in raw.get("watchlist") or []:
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(f"{path}: each watchlist entry needs a 'name' (and 'label': PER|ORG, 'aliases')")
        label = str(entry.get("label", "ORG")).upper()
        if label not in ("PER", "ORG", "LOC"):
            raise ValueError(
                f"{path}: watchlist entry {entry['name']!r} has label {label!r}; use PER, ORG or LOC"
            )
        phrase = _Phrase(label, normalize_tone_marks(str(entry["name"])), "watch")
        for surface in [entry["name"], *(entry.get("aliases") or [])]:
            key = _key(str(surface))
            if key:
                gaz.phrases[key] = phrase  # the watchlist overrides the built-in data
                gaz.first_tokens.add(key[0])


def with_watchlist(gaz: Gazetteer, path: Path) -> Gazetteer:
    """A copy of ``gaz`` plus the entries of a user watchlist YAML (same keys as ``gazetteer.yaml``:
    ``watchlist``, and optionally ``province_aliases`` and ``agency_heads``)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"watchlist file {path} does not exist; create it (see nlp/gazetteer.yaml for the format)"
            " or unset nlp.watchlist_path"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc}); fix the file or unset nlp.watchlist_path") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with a 'watchlist' list, got {type(raw).__name__}")
    extended = copy.deepcopy(gaz)
    _add_user_entries(extended, raw, path)
    return extended


@lru_cache(maxsize=4)
def default_gazetteer(extra_path: Path | None = GAZETTEER_PATH) -> Gazetteer:
    return build_gazetteer(extra_path)


def _is_name_like(tokens: Sequence[str], all_caps: bool) -> bool:
    if all_caps:
        return True
    return (
        all(t[0].isupper() or t.isdigit() or t.lower() in _SCOPE_WORDS for t in tokens)
        and tokens[-1][0].isupper()
    )


def _tokenize(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(0), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def find_mentions(text: str, gazetteer: Gazetteer | None = None) -> list[Mention]:
    """Gazetteer LOC/ORG mentions and agency ORGs in ``text`` (already tone-normalised), in order."""
    gaz = gazetteer or default_gazetteer()
    tokens = _tokenize(text)
    lowered = [t[0].lower() for t in tokens]
    all_caps = text == text.upper() and text != text.lower()
    mentions: list[Mention] = []
    i = 0
    while i < len(tokens):
        if lowered[i] not in gaz.first_tokens:
            i += 1
            continue
        hit = None
        for n in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
            phrase = gaz.phrases.get(tuple(lowered[i : i + n]))
            if phrase and (
                phrase.kind == "watch" or _is_name_like([t[0] for t in tokens[i : i + n]], all_caps)
            ):
                hit = (n, phrase)
                break
        if hit is None:
            i += 1
            continue
        n, phrase = hit
        if (
            phrase.kind != "watch"
            and not all_caps
            and _name_continues(text, tokens, i + n)
            # "Nga Vladimir Putin": a foreign name after a country does not extend the country
            and (phrase.kind != "place" or is_vietnamese_syllable(tokens[i + n][0].lower()))
        ):
            i += n  # "Tân Sơn" in "Tân Sơn Nhất": part of a longer name, not the district
            continue
        start, end = tokens[i][1], tokens[i + n - 1][2]
        province = phrase.canonical if phrase.kind in ("province", "district") else None
        org = _agency_before(tokens, lowered, i, gaz) if phrase.label == "LOC" else None
        if org is not None:
            org_start, head, scope = org
            surface = text[tokens[org_start][1] : end]
            place = text[start:end]
            canonical = " ".join(p for p in (head, scope, place) if p)
            mentions.append(
                Mention(surface, "ORG", canonical, tokens[org_start][1], end, province, place_start=start)
            )
        else:
            mentions.append(Mention(text[start:end], phrase.label, phrase.canonical, start, end, province))
        i += n
    return mentions


def _name_continues(text: str, tokens: Sequence[tuple[str, int, int]], nxt: int) -> bool:
    """True if token ``nxt`` extends the name before it (capitalised, one space away, not a surname)."""
    if nxt >= len(tokens):
        return False
    word, start, _ = tokens[nxt]
    gap = text[tokens[nxt - 1][2] : start]
    return gap == " " and word[0].isupper() and not word.isupper() and word not in SURNAMES


def _agency_before(
    tokens: Sequence[tuple[str, int, int]], lowered: Sequence[str], i: int, gaz: Gazetteer
) -> tuple[int, str, str] | None:
    """(start token, canonical head, scope) if ``[agency head] [scope] <place at i>`` precedes ``i``."""
    scope = ""
    j = i
    for cand in _SCOPES:
        if tuple(lowered[i - len(cand) : i]) == cand and i - len(cand) >= 0:
            scope = "thành phố" if cand in (("tp",), ("thành", "phố")) else " ".join(cand)
            j = i - len(cand)
            break
    for n in range(min(9, j), 0, -1):
        head = gaz.agency_heads.get(tuple(lowered[j - n : j]))
        if head is not None and tokens[j - n][0][0].isupper():
            return j - n, head, scope
    return None


def find_people(text: str, gazetteer: Gazetteer | None = None) -> list[Mention]:
    """Person names by pattern: a family name then 1–3 capitalised syllables (``Nguyễn Văn An``)."""
    gaz = gazetteer or default_gazetteer()
    tokens = _tokenize(text)
    out: list[Mention] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i][0]
        if tok in SURNAMES and (i == 0 or text[tokens[i - 1][2] : tokens[i][1]].strip() in ("", ",")):
            j = i + 1
            while j < len(tokens) and j - i < 4 and tokens[j][0][:1].isupper() and not tokens[j][0].isupper():
                if text[tokens[j - 1][2] : tokens[j][1]] != " ":
                    break
                j += 1
            n = j - i
            key = tuple(t[0].lower() for t in tokens[i:j])
            prev = tokens[i - 1][0].lower() if i else ""
            sentence_start = i == 0 or text[tokens[i - 1][2] : tokens[i][1]].strip() != ""
            named_after = prev in _NAMED_AFTER_CUES  # "đường Nguyễn Huệ" is a street, not a person
            if (
                n >= 2
                and key not in gaz.phrases
                and not named_after
                and (n >= 3 or prev in _PERSON_CUES or not sentence_start)
            ):
                name = text[tokens[i][1] : tokens[j - 1][2]]
                out.append(Mention(name, "PER", name, tokens[i][1], tokens[j - 1][2]))
                i = j
                continue
        i += 1
    return out


@lru_cache(maxsize=1)
def _crf_ner() -> Any:
    from underthesea import ner  # lazy: importing underthesea costs about a second

    return ner


def crf_people(text: str) -> list[str]:
    """Person names from underthesea's CRF NER (use on title + lead only: it is the slow part)."""
    names: list[str] = []
    current: list[str] = []
    for token in _crf_ner()(text):
        word, tag = token[0], token[-1]
        if tag == "B-PER" or (tag == "I-PER" and not current):
            if current:
                names.append(" ".join(current))
            current = [word]
        elif tag == "I-PER":
            current.append(word)
        else:
            if current:
                names.append(" ".join(current))
            current = []
    if current:
        names.append(" ".join(current))
    return names


@dataclass
class EntityExtractor:
    """Entities for a document: gazetteer LOC/ORG, watchlist, people (pattern + optional CRF)."""

    gazetteer: Gazetteer = field(default_factory=default_gazetteer)
    use_crf_ner: bool = False
    lead_chars: int = 400

    def mentions(self, title: str, text: str) -> list[Mention]:
        body = normalize_tone_marks(f"{title}\n{text}")
        found = find_mentions(body, self.gazetteer)
        taken = [(m.start, m.end) for m in found]
        for person in find_people(body, self.gazetteer):
            if not any(s < person.end and person.start < e for s, e in taken):
                found.append(person)
        return found

    def extract(self, title: str, text: str) -> list[Entity]:
        """Unique entities (by label + canonical + surface), in order of first mention."""
        mentions = self.mentions(title, text)
        entities = [Entity(text=m.text, label=m.label, canonical=m.canonical) for m in mentions]
        if self.use_crf_ner:
            head = normalize_tone_marks(f"{title}. {text[: self.lead_chars]}")
            places = {m.text.lower() for m in mentions if m.label != "PER"}
            for name in crf_people(head):
                if name.lower() not in places and name.lower() not in {
                    p.lower() for p in self.gazetteer.provinces
                }:
                    entities.append(Entity(text=name, label="PER", canonical=name))
        return _unique(entities)


def _unique(entities: Iterable[Entity]) -> list[Entity]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for ent in entities:
        key = (ent.label, ent.canonical, ent.text)
        if key not in seen:
            seen.add(key)
            out.append(ent)
    return out


# --------------------------------------------------------------------------- province relevance

#: Evidence weight of one mention by where it is; combined as a noisy-OR.
WEIGHT_TITLE = 0.7
WEIGHT_LEAD = 0.45
WEIGHT_BODY = 0.15
WEIGHT_LIST = 0.03
#: A sentence naming this many different provinces is a list (weather, rankings): weak evidence.
LIST_MIN_PROVINCES = 3


def _province_mentions(text: str, province: str, gaz: Gazetteer) -> list[tuple[Mention, bool]]:
    """Mentions pointing at ``province`` with, for each, whether it sits in a list of provinces."""
    mentions = [m for m in find_mentions(text, gaz) if m.province]
    if not any(m.province == province for m in mentions):
        return []
    out = []
    for sentence in _SENTENCE_RE.finditer(text):
        here = [m for m in mentions if sentence.start() <= m.start < sentence.end()]
        provinces_here = {m.province for m in here}
        for m in here:
            if m.province == province:
                out.append((m, len(provinces_here) >= LIST_MIN_PROVINCES))
    return out


def province_relevance(
    doc_entities: Sequence[Entity],
    title: str,
    lead: str,
    text: str,
    province: str,
    gazetteer: Gazetteer | None = None,
) -> float:
    """How much a document concerns ``province`` (any old or new name), in [0, 1].

    Mentions in the title and lead weigh most; a mention inside a list of several provinces
    (a weather report, a ranking) barely counts. ``text`` is the body after the lead.
    """
    gaz = gazetteer or default_gazetteer()
    target = gaz.canonical_province(province) or province
    if doc_entities and not any(
        (e.canonical == target) or (target in e.canonical) or gaz.canonical_province(e.text) == target
        for e in doc_entities
    ):
        # Watchlist entries may point at the province without naming it; they do not count here.
        return 0.0
    miss = 1.0
    for part, weight in ((title, WEIGHT_TITLE), (lead, WEIGHT_LEAD), (text, WEIGHT_BODY)):
        for _mention, in_list in _province_mentions(normalize_tone_marks(part), target, gaz):
            w = WEIGHT_LIST if in_list else weight
            miss *= 1.0 - w
    return round(1.0 - miss, 4)
