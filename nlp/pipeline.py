"""The spaCy frame for Vietnamese (khung xử lý spaCy): tokens, normalisation, language, entities.

``build_pipeline(gazetteer)`` returns a ``spacy.blank("vi")`` ``Language`` whose tokenizer is
underthesea's CRF word segmentation (``word_tokenize``: "Bình Phước", "bệnh viện" are one token
each), run line by line and aligned back to the text so ``doc.text`` is the (tone-normalised) input.
Gazetteer names are kept whole, like underthesea's ``fixed_words``: when the CRF glues a place to a
neighbouring lower-case word ("công TPHCM") the token is cut, but when it joins a place into a longer
proper name ("Nguyễn Thanh Bình", "Tân Sơn Nhất") the segmentation wins and the place is not tagged.

Components (registered with ``@Language.component`` / ``@Language.factory``):

- ``vi_normalize``: ``token.norm_`` = lower-case syllables (punctuation inside a token dropped:
  ``TP.HCM`` → ``tp hcm``); ``token._.no_diacritics`` for text typed without diacritics.
- ``vi_langid``: ``doc._.lang`` and ``doc._.lang_confidence`` (``nlp.langid``).
- ``vi_gazetteer``: a ``PhraseMatcher`` on ``NORM`` over the administrative units (63 old / 34 new
  provinces and the old districts from underthesea's 2025-07-01 address data), the analysts'
  aliases and watchlist; a place after an agency head ("UBND tỉnh", "Sở Y tế") becomes an ORG.
  Each entity's ``kb_id_`` is its canonical name (old and new names link to the new province:
  "Đồng Xoài", "Bình Phước" → "Đồng Nai") and ``span._.province`` the province it points at.
- ``vi_crf_ner``: underthesea's CRF NER (POS → chunk → NER, the models of ``underthesea.ner``) for
  PER/ORG/LOC the gazetteers do not cover, on sentences that hold a capitalised word outside the
  entities already found. underthesea builds the CRF features with an O(n²) loop per sentence
  (~0.5 ms per token); ``_CrfStep`` builds the same feature strings in O(n) (tested equal).
- ``vi_person_pattern``: family name + capitalised syllables ("Nguyễn Văn An") for the people the
  CRF misses.

``doc_entities(doc)`` turns ``doc.ents`` into ``schema.Entity`` values; ``doc_province_relevance``
scores coverage of a province from the entities' positions (title > lead > body; a mention in a
list of provinces or a weather round-up barely counts).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import count, pairwise
from typing import Any

from nlp._lean import without_heavy_optional_imports
from nlp.entities import (
    LIST_MIN_PROVINCES,
    SURNAMES,
    WEIGHT_BODY,
    WEIGHT_LEAD,
    WEIGHT_LIST,
    WEIGHT_TITLE,
    Gazetteer,
    _agency_before,
    _is_name_like,
    _tokenize,
    _unique,
    default_gazetteer,
    find_mentions,
    find_people,
)
from nlp.langid import detect_language, is_vietnamese_syllable
from nlp.normalize import normalize_tone_marks, remove_diacritics
from schema.document import Entity

with without_heavy_optional_imports():  # thinc would import torch (~4 s, ~250 MB) if installed
    import spacy
    from spacy.language import Language
    from spacy.matcher import PhraseMatcher
    from spacy.tokens import Doc, Span, Token
    from spacy.vocab import Vocab

__all__ = [
    "UndertheseaTokenizer",
    "build_pipeline",
    "crf_ner_tags",
    "doc_entities",
    "doc_province_relevance",
    "segment",
]

_LINE_RE = re.compile(r"[^\n]+")
_NONSPACE_RE = re.compile(r"\S+")
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_SENTENCE_RE = re.compile(r"[^.!?;\n]+[.!?;]*", re.UNICODE)
_SENTENCE_END = frozenset({".", "!", "?", ";", "…", "..."})
#: Words that make a sentence naming two provinces a weather/disaster round-up, not coverage.
_ROUNDUP_CUES = ("thời tiết", "dự báo", "mưa", "nắng nóng", "nhiệt độ", "áp thấp", "bão", "rét", "giá vàng")
_CRF_LABELS = {"PER": "PER", "ORG": "ORG", "LOC": "LOC"}
#: First words of organisation names: the CRF often calls "Bộ Công Thương" a LOC.
_ORG_HEADS = frozenset(
    {
        *("bộ", "sở", "ban", "cục", "viện", "trường", "hội", "quỹ", "báo", "đài", "đảng", "hãng", "clb"),
        *("ubnd", "hđnd", "công ty", "tổng công ty", "tập đoàn", "ngân hàng", "đại học", "học viện"),
        *("ủy ban", "quốc hội", "chính phủ", "tòa án", "viện kiểm sát", "công an", "liên đoàn"),
        *("câu lạc bộ", "nhà máy", "văn phòng", "bệnh viện", "trung tâm", "tổ chức", "tổng cục"),
    }
)
#: Words before a name that make it a place (a street, an airport…), not a person.
_PLACE_CUES = frozenset(
    {
        *("đường", "phố", "phường", "xã", "quận", "huyện", "tỉnh", "cầu", "chợ", "hẻm", "ngõ", "sân bay"),
        *("cảng", "sông", "núi", "đảo", "khu", "làng", "thôn", "ấp", "bến", "đèo", "hồ", "tại", "ở"),
    }
)

if not Doc.has_extension("lang"):
    Doc.set_extension("lang", default=None)
    Doc.set_extension("lang_confidence", default=0.0)
    Span.set_extension("province", default=None)
    Span.set_extension("source", default="")
    Token.set_extension("no_diacritics", getter=lambda token: remove_diacritics(token.norm_))


# --------------------------------------------------------------------------- underthesea, lean


@lru_cache(maxsize=1)
def _word_tokenize() -> Callable[..., list[str]]:
    with without_heavy_optional_imports():
        from underthesea.pipeline.word_tokenize import word_tokenize
    fn: Callable[..., list[str]] = word_tokenize
    return fn


_TEMPLATE_RE = re.compile(r"T\[(-?\d+)(?:,(-?\d+))?\](?:\[(\d+)\])?(?:\.(\w+))?")


def _istitle(word: str) -> bool:
    # underthesea's ``text_istitle``: every space-separated part starts with a title-case letter.
    try:
        return bool(word) and all(part[0].istitle() for part in word.split(" "))
    except IndexError:
        return False


class _CrfStep:
    """One of underthesea's 2017 CRF taggers (POS, chunk, NER) with an O(n) feature builder.

    Feature strings are exactly those of ``underthesea.pipeline.*.tagged_feature.word2features``
    (``T[-1,0][1]=Np N``, ``T[0].istitle=True``, ``BOS``/``EOS`` outside the sentence).
    """

    def __init__(self, model: Any, template: Sequence[str]) -> None:
        self.model = model
        self.template: list[tuple[str, int, int | None, int, str | None]] = []
        for syntax in template:
            m = _TEMPLATE_RE.fullmatch(syntax)
            if m is None or m.group(4) not in (None, "lower", "istitle"):
                raise ValueError(f"unsupported CRF feature template {syntax!r}")
            i2 = int(m.group(2)) if m.group(2) is not None else None
            column = int(m.group(3)) if m.group(3) is not None else 0
            self.template.append((f"{syntax}=", int(m.group(1)), i2, column, m.group(4)))

    @staticmethod
    def _apply(fn: str | None, word: str) -> str:
        if fn == "lower":
            return word.lower()
        if fn == "istitle":
            return str(_istitle(word))
        return word

    def features(self, columns: Sequence[Sequence[str]]) -> list[list[str]]:
        n = len(columns[0])
        rows: list[list[str]] = [[] for _ in range(n)]
        transformed: dict[tuple[int, str | None], list[str]] = {}
        for prefix, i1, i2, col, fn in self.template:
            values = columns[col]
            if i2 is None:
                src = transformed.get((col, fn))
                if src is None:
                    src = [self._apply(fn, w) for w in values] if fn else list(values)
                    transformed[(col, fn)] = src
                if i1 < 0:
                    shifted = ["BOS"] * min(-i1, n) + src[: max(n + i1, 0)]
                else:
                    shifted = src[i1:] + ["EOS"] * min(i1, n)
            else:
                shifted = []
                for i in range(n):
                    if i + i1 < 0:
                        shifted.append("BOS")
                    elif i + i1 >= n or i + i2 >= n:
                        shifted.append("EOS")
                    else:
                        shifted.append(self._apply(fn, " ".join(values[i + i1 : i + i2 + 1])))
            for row, value in zip(rows, shifted, strict=True):
                row.append(prefix + value)
        return rows

    def tag(self, columns: Sequence[Sequence[str]]) -> list[str]:
        tags: list[str] = self.model.tag(self.features(columns))
        return tags


@lru_cache(maxsize=1)
def _crf_steps() -> tuple[_CrfStep, _CrfStep, _CrfStep]:
    with without_heavy_optional_imports():
        from underthesea.pipeline.chunking.model_crf import CRFChunkingPredictor
        from underthesea.pipeline.ner.model_crf import CRFNERPredictor
        from underthesea.pipeline.pos_tag.model_crf import CRFPOSTagPredictor
    steps = []
    for predictor_class in (CRFPOSTagPredictor, CRFChunkingPredictor, CRFNERPredictor):
        predictor = predictor_class.Instance()
        steps.append(_CrfStep(predictor.model, predictor.transformer.template))
    return steps[0], steps[1], steps[2]


def crf_ner_tags(words: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """(word, POS, chunk, NER) per word, as ``underthesea.ner`` gives for the same words."""
    if not words:
        return []
    pos_step, chunk_step, ner_step = _crf_steps()
    words = [" ".join(w.split()) for w in words]
    blank = ["X"] * len(words)
    pos = pos_step.tag([words, blank])
    chunk = chunk_step.tag([words, pos, blank])
    ner = ner_step.tag([words, pos, chunk, blank])
    return list(zip(words, pos, chunk, ner, strict=True))


# --------------------------------------------------------------------------- tokenizer


def _align(line: str, words: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans in ``line`` of underthesea's words (syllables joined by one space)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for word in words:
        start: int | None = None
        end = pos
        for syllable in word.split():
            k = line.find(syllable, end)
            if k < 0 or line[end:k].strip():
                # underthesea normalised this syllable: take the same number of characters.
                skip = len(line[end:]) - len(line[end:].lstrip())
                k = end + skip
                if not syllable or any(ch.isspace() for ch in line[k : k + len(syllable)]):
                    return spans + _whitespace_split(line, pos)
            if start is None:
                start = k
            end = k + len(syllable)
        if start is not None:
            spans.append((start, end))
            pos = end
    if line[pos:].strip():
        spans.extend(_whitespace_split(line, pos))
    return spans


def _split_case_changes(line: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Cut words the CRF glued across a name boundary: "công TPHCM" → "công" | "TPHCM",
    "Tô Lâm tiếp" → "Tô Lâm" | "tiếp" (a lower-case syllable after two capitalised ones)."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        word = line[s:e]
        if " " not in word:
            out.append((s, e))
            continue
        syllables = [(m.start() + s, m.end() + s) for m in _NONSPACE_RE.finditer(word)]
        caps = [line[a].isupper() for a, _ in syllables]
        start = 0
        for k in range(1, len(syllables)):
            lower_to_capital = not caps[k - 1] and caps[k]
            name_to_lower = not caps[k] and k - start >= 2 and all(caps[start:k])
            if lower_to_capital or name_to_lower:
                out.append((syllables[start][0], syllables[k - 1][1]))
                start = k
        out.append((syllables[start][0], syllables[-1][1]))
    return out


def _whitespace_split(line: str, pos: int) -> list[tuple[int, int]]:
    return [(m.start() + pos, m.end() + pos) for m in _NONSPACE_RE.finditer(line[pos:])]


def _capitalised_syllable_before(line: str, pos: int) -> bool:
    """True if ``line[:pos]`` ends with " <Capitalised syllable> " (a longer name goes on)."""
    if pos == 0 or line[pos - 1] != " ":
        return False
    words = _WORD_RE.findall(line[max(0, pos - 30) : pos - 1])
    before = line[max(0, pos - 30) : pos - 1]
    return bool(words) and before.endswith(words[-1]) and words[-1][0].isupper()


def _name_goes_on(line: str, pos: int, foreign_ok: bool = False) -> bool:
    """True if a capitalised word that is not a family name follows ``pos`` after one space
    (with ``foreign_ok``, a non-Vietnamese word does not extend it: "Nga Vladimir Putin")."""
    if pos >= len(line) or line[pos] != " ":
        return False
    m = _WORD_RE.match(line, pos + 1)
    if m is None:
        return False
    word = m.group(0)
    if foreign_ok and not is_vietnamese_syllable(word.lower()):
        return False
    return word[0].isupper() and not word.isupper() and word not in SURNAMES


def _keep_names_whole(line: str, spans: list[tuple[int, int]], gaz: Gazetteer) -> list[tuple[int, int]]:
    """Re-cut the word spans so each gazetteer name in ``line`` is one token (see module docs)."""
    mentions = find_mentions(line, gaz)
    if not mentions:
        return spans
    whole: list[tuple[int, int]] = []
    cuts: set[int] = set()
    for m in mentions:
        start = m.place_start if m.place_start is not None else m.start
        if m.province is not None and line[start].islower():
            # "tỉnh Quảng Nam": the entity is the name; the scope word stays a token of its own
            first_capital = next(
                (k.start() for k in _WORD_RE.finditer(line, start, m.end) if k.group(0)[0].isupper()), None
            )
            if first_capital is None:
                continue
            start = first_capital
        crossing_start = [s for s, e in spans if s < start < e]
        crossing_end = [e for s, e in spans if s < m.end < e]
        if crossing_start and _capitalised_syllable_before(line, start):
            continue  # "Nguyễn Thanh Bình": the place is part of a longer name
        if crossing_end and _name_goes_on(line, m.end):
            continue
        whole.append((start, m.end))
        cuts.update((start, m.end))
        if m.place_start is not None:
            cuts.add(m.start)  # the agency head starts a token too
    if not whole:
        return spans
    pieces: list[tuple[int, int]] = []
    for s, e in spans:
        points = [s, *sorted(c for c in cuts if s < c < e), e]
        for a, b in pairwise(points):
            text = line[a:b]
            stripped = text.strip()
            if stripped:
                lead = len(text) - len(text.lstrip())
                pieces.append((a + lead, a + lead + len(stripped)))
    out: list[tuple[int, int]] = []
    owner: list[int] = []
    for s, e in pieces:
        container = next((i for i, (ws, we) in enumerate(whole) if ws <= s and e <= we), -1)
        if container >= 0 and owner and owner[-1] == container:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
            owner.append(container)
    return out


def segment(text: str, gazetteer: Gazetteer | None = None) -> list[tuple[int, int]]:
    """Word spans of ``text``: underthesea's segmentation per line, gazetteer names kept whole."""
    word_tokenize = _word_tokenize()
    spans: list[tuple[int, int]] = []
    for m in _LINE_RE.finditer(text):
        line = m.group(0)
        if not line.strip():
            continue
        words = _split_case_changes(line, _align(line, word_tokenize(line)))
        if gazetteer is not None:
            words = _keep_names_whole(line, words, gazetteer)
        offset = m.start()
        spans.extend((s + offset, e + offset) for s, e in words)
    return spans


def _words_and_spaces(text: str, spans: Sequence[tuple[int, int]]) -> tuple[list[str], list[bool]]:
    words: list[str] = []
    spaces: list[bool] = []
    pos = 0
    for s, e in [*spans, (len(text), len(text))]:
        gap = text[pos:s]
        if gap:
            if words and gap[0] == " ":
                spaces[-1] = True
                gap = gap[1:]
            if gap:
                words.append(gap)
                spaces.append(False)
        if s < e:
            words.append(text[s:e])
            spaces.append(False)
        pos = e
    return words, spaces


def _text(doc: Doc) -> str:
    """``doc.text``, cached: spaCy rebuilds it from the tokens on every access."""
    text = doc.user_data.get("text")
    if not isinstance(text, str):
        text = _text(doc)
        doc.user_data["text"] = text
    return text


class UndertheseaTokenizer:
    """spaCy tokenizer: NFC + tone-mark normalisation, then underthesea word segmentation."""

    def __init__(self, vocab: Vocab, gazetteer: Gazetteer | None = None) -> None:
        self.vocab = vocab
        self.gazetteer = gazetteer

    def __call__(self, text: str) -> Doc:
        text = normalize_tone_marks(text)
        words, spaces = _words_and_spaces(text, segment(text, self.gazetteer))
        doc = Doc(self.vocab, words=words, spaces=spaces)
        doc.user_data["text"] = text
        return doc

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        for text in texts:
            yield self(text)


# --------------------------------------------------------------------------- components

#: Gazetteers handed to the ``vi_gazetteer``/``vi_crf_ner`` factories by key (spaCy configs hold
#: only plain values). ``build_pipeline`` registers them; the components keep them alive.
_GAZETTEERS: weakref.WeakValueDictionary[str, Gazetteer] = weakref.WeakValueDictionary()
_GAZETTEER_KEYS = count()


@lru_cache(maxsize=200_000)
def _norm(text: str) -> str:
    syllables = _WORD_RE.findall(text.lower())
    return " ".join(syllables) if syllables else text.lower()


@Language.component("vi_normalize")
def vi_normalize(doc: Doc) -> Doc:
    """``token.norm_``: lower-case syllables, punctuation inside a token dropped (``tp hcm``)."""
    for token in doc:
        token.norm_ = _norm(token.text)
    return doc


@Language.component("vi_langid")
def vi_langid(doc: Doc) -> Doc:
    doc._.lang, doc._.lang_confidence = detect_language(_text(doc)[:2000])
    return doc


def _line_bounds(text: str, pos: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, len(text) if end < 0 else end


class GazetteerRuler:
    """PhraseMatcher over the gazetteer (NORM attribute); entities linked through ``kb_id_``."""

    def __init__(self, nlp: Language, name: str, gazetteer: str) -> None:
        self.name = name
        self.gaz = _GAZETTEERS[gazetteer]
        self.vocab = nlp.vocab
        self.matcher = PhraseMatcher(nlp.vocab, attr="NORM")
        groups: dict[str, list[Doc]] = {}
        for key, phrase in self.gaz.phrases.items():
            norm = " ".join(key)
            pattern = Doc(nlp.vocab, words=[norm])
            pattern[0].norm_ = norm
            groups.setdefault(f"{phrase.label}\t{phrase.kind}\t{phrase.canonical}", []).append(pattern)
        for match_key, patterns in groups.items():
            self.matcher.add(match_key, patterns)

    def __call__(self, doc: Doc) -> Doc:
        text = _text(doc)
        spans: list[Span] = []
        for match_id, start, end in self.matcher(doc):
            label, kind, canonical = self.vocab.strings[match_id].split("\t")
            span = doc[start:end]
            if kind != "watch":
                line_start, line_end = _line_bounds(text, span.start_char)
                line = text[line_start:line_end]
                all_caps = line == line.upper() and line != line.lower()
                if not _is_name_like(_WORD_RE.findall(span.text), all_caps):
                    continue
                if not all_caps and _name_goes_on(text, span.end_char, foreign_ok=kind == "place"):
                    continue
            province = canonical if kind in ("province", "district") else None
            out = self._agency(doc, span, province) if label == "LOC" else None
            if out is None:
                out = Span(doc, start, end, label=label, kb_id=canonical)
                out._.province = province
                out._.source = "watchlist" if kind == "watch" else "gazetteer"
            spans.append(out)
        doc.ents = _non_overlapping(spans)
        return doc

    def _agency(self, doc: Doc, place: Span, province: str | None) -> Span | None:
        window_start = max(0, place.start_char - 120)
        tokens = _tokenize(_text(doc)[window_start : place.end_char])
        first = next((i for i, t in enumerate(tokens) if t[1] + window_start == place.start_char), None)
        if first is None:
            return None
        found = _agency_before(tokens, [t[0].lower() for t in tokens], first, self.gaz)
        if found is None:
            return None
        head_token, head, scope = found
        span = doc.char_span(tokens[head_token][1] + window_start, place.end_char, label="ORG")
        if span is None:
            return None
        canonical = " ".join(p for p in (head, scope, place.text) if p)
        span = Span(doc, span.start, span.end, label="ORG", kb_id=canonical)
        span._.province = province
        span._.source = "agency"
        return span


@Language.factory("vi_gazetteer", default_config={"gazetteer": "default"})
def make_vi_gazetteer(nlp: Language, name: str, gazetteer: str) -> GazetteerRuler:
    if gazetteer == "default" and "default" not in _GAZETTEERS:
        _GAZETTEERS["default"] = default_gazetteer()
    return GazetteerRuler(nlp, name, gazetteer)


def _non_overlapping(spans: Iterable[Span]) -> list[Span]:
    """Longest first, then earliest; spans that overlap a kept one are dropped."""
    kept: list[Span] = []
    taken: set[int] = set()
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        if not taken.intersection(range(span.start, span.end)):
            kept.append(span)
            taken.update(range(span.start, span.end))
    return sorted(kept, key=lambda s: s.start)


def _sentences(
    texts: Sequence[str], starts: Sequence[int], max_char: int | None
) -> Iterator[tuple[int, int]]:
    """Token ranges of sentences (split at . ! ? ; and line breaks), up to ``max_char``."""
    start = 0
    for i, (text, idx) in enumerate(zip(texts, starts, strict=True)):
        if max_char is not None and idx >= max_char:
            if i > start:
                yield start, i
            return
        if text in _SENTENCE_END or "\n" in text:
            if i + 1 > start:
                yield start, i + 1
            start = i + 1
    if start < len(texts):
        yield start, len(texts)


#: Lower-case words that precede a place name and are not part of it ("xã Tân Lập", "đường Nguyễn Huệ").
_LOC_CUES = frozenset(
    {
        "xã",
        "phường",
        "thị trấn",
        "ấp",
        "thôn",
        "bản",
        "đường",
        "phố",
        "sân bay",
        "cảng",
        "huyện",
        "quận",
        "tỉnh",
    }
)
#: Words that start a place name and belong to it ("sông Đồng Nai", "Quảng trường Ba Đình").
_LOC_HEADS = frozenset(
    {"sông", "châu", "quảng trường", "vườn quốc gia", "khu công nghiệp", "khu kinh tế", "cầu", "hồ", "núi"}
    | {"đảo", "bán đảo", "dải", "vịnh", "đèo", "chợ"}
)
#: Bodies that are names on their own when capitalised.
_STANDALONE_ORGS = frozenset({"quốc hội", "chính phủ", "bộ chính trị", "ban bí thư", "trung ương"})
#: Lower-case words allowed inside an organisation name ("Bộ Giao thông vận tải", "Tòa án nhân dân tỉnh …").
_ORG_INNER = frozenset(
    {"nhân dân", "vận tải", "đào tạo", "môi trường", "xã hội", "phát triển", "nông thôn", "thương binh"}
    | {"và", "cổ phần", "trách nhiệm", "hữu hạn", "một thành viên", "quốc gia", "quốc tế", "giao thông"}
    | {"tỉnh", "thành phố", "huyện", "quận", "thị xã", "các", "khu công nghiệp", "kiểm sát", "nhà nước"}
)
#: Inner words that only glue a name together (it cannot end on them).
_ORG_GLUE = frozenset({"và", "các", "tỉnh", "thành phố", "huyện", "quận", "thị xã"})
#: Organisations often named after a person ("Trường THPT Nguyễn Huệ").
_NAMED_AFTER_PEOPLE = frozenset({"trường", "đại học", "học viện", "công ty", "quỹ", "bệnh viện"})
_ORG_HEADS_PATTERN = _ORG_HEADS | {"cảnh sát", "đại sứ quán", "lãnh sự quán", "tổng cục", "tổng công ty"}
_HEAD_FIRST_WORDS = frozenset(h.split(" ")[0] for h in _ORG_HEADS_PATTERN | _LOC_HEADS)


def _name_token(text: str, strict: bool) -> bool:
    """A token that can be part of a name: all syllables capitalised (or digits); without ``strict``
    also a word capitalised on its first syllable only ("Y tế" in "Bộ Y tế")."""
    syllables = _WORD_RE.findall(text)
    if not syllables or not (syllables[0][0].isupper() or syllables[0][0].isdigit()):
        return False
    caps = [w[0].isupper() or w[0].isdigit() for w in syllables]
    return all(caps) or (not strict and not any(caps[1:]))


def _is_person_name(text: str) -> bool:
    syllables = text.split()
    return len(syllables) >= 2 and syllables[0] in SURNAMES and _name_token(text, strict=True)


class NamePatterns:
    """Rule patterns around cue words: organisations by their head ("Bộ Y tế", "Công ty Cổ phần …"),
    places after a cue ("xã Tân Lập" → LOC "Tân Lập", linked when the ward name is in one province
    only) or with their head ("sông Đồng Nai"). Places from the gazetteer inside an organisation
    name become part of it; other entities already found are kept."""

    def __init__(self, nlp: Language, name: str, gazetteer: str) -> None:
        self.name = name
        self.gaz = _GAZETTEERS.get(gazetteer) or default_gazetteer()

    def _name_end(self, doc: Doc, start: int, org_head: str | None) -> int:
        """End of the name from ``start``: name tokens (and, in an organisation's name, the usual
        lower-case words between them), up to the last name-like or organisation word."""
        strict = org_head is None
        end = last = start
        while end < len(doc):
            token = doc[end]
            if token.is_space or (token.is_punct and token.text not in ("-", "&")):
                break
            if _name_token(token.text, strict):
                if (
                    org_head is not None
                    and end > start
                    and org_head not in _NAMED_AFTER_PEOPLE
                    and _is_person_name(token.text)
                ):
                    break  # "Bộ Tài chính Nguyễn Văn Thắng": the minister, not the ministry
                last = end + 1
            elif org_head is None or token.norm_ not in _ORG_INNER:
                break
            elif token.norm_ not in _ORG_GLUE:
                last = end + 1  # "Bộ Giao thông vận tải"
            end += 1
        return last

    @staticmethod
    def _head(norms: Sequence[str], i: int, heads: frozenset[str]) -> int:
        """Number of tokens of the longest head from ``heads`` at ``i`` (0: none)."""
        if norms[i].split(" ", 1)[0] not in _HEAD_FIRST_WORDS:
            return 0
        for n in (3, 2, 1):
            if i + n <= len(norms) and " ".join(norms[i : i + n]) in heads:
                return n
        return 0

    def __call__(self, doc: Doc) -> Doc:
        ents = list(doc.ents)
        owner = {i: e for e in ents for i in range(e.start, e.end)}
        norms = [t.norm_ for t in doc]
        new: list[Span] = []
        i = 0
        while i < len(doc):
            token = doc[i]
            span: Span | None = None
            capital = token.text[:1].isupper()
            org_n = self._head(norms, i, _ORG_HEADS_PATTERN) if capital else 0
            loc_n = self._head(norms, i, _LOC_HEADS)
            if capital and token.norm_ in _STANDALONE_ORGS and i not in owner:
                span = Span(doc, i, i + 1, label="ORG", kb_id=token.text)
            elif org_n:
                head = " ".join(t.norm_ for t in doc[i : i + org_n])
                end = self._name_end(doc, i + org_n, head)
                if end > i + org_n and all(owner[k].label_ == "LOC" for k in range(i, end) if k in owner):
                    span = self._org(doc, i, end, owner)
            elif loc_n and (capital or token.norm_ in _LOC_HEADS):
                end = self._name_end(doc, i + loc_n, None)
                if end > i + loc_n and not any(
                    k in owner and owner[k].label_ != "LOC" for k in range(i, end)
                ):
                    span = self._loc(doc, i, end, owner)
            elif (
                not capital
                and token.norm_ in _LOC_CUES
                and i + 1 < len(doc)
                and i + 1 not in owner
                and doc[i + 1].text[:1].isupper()  # "xã Tân Lập", not "quận 1"
            ):
                end = self._name_end(doc, i + 1, None)
                if end > i + 1 and not any(k in owner for k in range(i + 1, end)):
                    span = self._place(doc, i + 1, end)
            if span is not None:
                span._.source = span._.source or "pattern"
                for k in range(span.start, span.end):
                    if k in owner and owner[k] in ents:
                        ents.remove(owner[k])
                new.append(span)
                owner.update({k: span for k in range(span.start, span.end)})
                i = span.end
            else:
                i += 1
        if new:
            doc.ents = sorted([*ents, *new], key=lambda s: s.start)
        return doc

    def _loc(self, doc: Doc, start: int, end: int, owner: dict[int, Span]) -> Span:
        span = Span(doc, start, end, label="LOC", kb_id=doc[start:end].text)
        span._.province = None  # "sông Đồng Nai", "Khu công nghiệp Đồng Xoài": not the province itself
        return span

    def _org(self, doc: Doc, start: int, end: int, owner: dict[int, Span]) -> Span:
        inner = {owner[k]._.province for k in range(start, end) if k in owner and owner[k]._.province}
        span = Span(doc, start, end, label="ORG", kb_id=doc[start:end].text)
        span._.province = next(iter(inner)) if len(inner) == 1 else None
        return span

    def _place(self, doc: Doc, start: int, end: int) -> Span:
        surface = doc[start:end].text
        provinces = self.gaz.wards.get(tuple(_WORD_RE.findall(surface.lower())), set())
        province = next(iter(provinces)) if len(provinces) == 1 else None
        span = Span(doc, start, end, label="LOC", kb_id=surface)
        span._.province = province
        return span


@Language.factory("vi_name_patterns", default_config={"gazetteer": "default"})
def make_vi_name_patterns(nlp: Language, name: str, gazetteer: str) -> NamePatterns:
    return NamePatterns(nlp, name, gazetteer)


#: Titles and forms of address before a person's name.
_PERSON_CUES = frozenset(
    {"ông", "bà", "anh", "chị", "cụ", "đồng chí", "thủ tướng", "phó thủ tướng", "tổng thống", "chủ tịch"}
    | {"chủ tịch nước", "phó chủ tịch", "bộ trưởng", "thứ trưởng", "đại sứ", "giám đốc", "tổng giám đốc"}
    | {"phó giám đốc", "bí thư", "tổng bí thư", "phó bí thư", "ca sĩ", "nhà văn", "nhạc sĩ", "giáo sư"}
    | {"tiến sĩ", "bác sĩ", "bị cáo", "nghệ sĩ", "cầu thủ", "huấn luyện viên", "hlv", "đại tá", "thượng tá"}
    | {"trung tá", "thiếu tá", "đại tướng", "thượng tướng", "trung tướng", "thiếu tướng", "tướng"}
    | {"diễn viên", "đạo diễn", "tác giả", "luật sư", "nhà báo", "phóng viên", "người phát ngôn"}
    | {"hiệu trưởng", "viện trưởng", "chủ nhiệm", "trưởng ban", "trưởng phòng", "vua", "nữ hoàng", "tỷ phú"}
    | {"doanh nhân", "nghi phạm", "đối tượng", "nạn nhân", "tiền đạo", "tiền vệ", "thủ môn", "hậu vệ"}
)


#: Titles written before names, often abbreviated ("GS", "PGS-TS", "ThS", "BS").
_TITLES = _PERSON_CUES | frozenset(
    {"gs", "pgs", "ts", "ths", "bs", "ks", "ls", "nsnd", "nsưt", "gs ts", "pgs ts", "gs tskh", "ncs", "lm"}
)


def _has_letters(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def _is_acronym(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return (
        bool(letters)
        and all(ch.isupper() for ch in letters)
        and all(len(w) <= 4 for w in _WORD_RE.findall(text))
    )


def _place_cue(token: Token | None) -> bool:
    return token is not None and token.norm_ in _PLACE_CUES


def _all_syllables_capitalised(text: str) -> bool:
    return all(w[0].isupper() or w[0].isdigit() for w in _WORD_RE.findall(text))


def _person_cue(doc: Doc, start: int, owner: dict[int, Span]) -> bool:
    """True if a title or form of address stands before ``start``, possibly across a place
    ("Thủ tướng Nhật Bản Fumio Kishida")."""
    k = start - 1
    while k >= 0 and doc[k].is_space:
        k -= 1
    if k >= 0 and k in owner and owner[k].label_ == "LOC":
        k = owner[k].start - 1
    if k < 0:
        return False
    one = doc[k].norm_
    two = f"{doc[k - 1].norm_} {one}" if k > 0 else one
    return one in _PERSON_CUES or two in _PERSON_CUES


class CrfNer:
    """underthesea's CRF NER for entities outside the gazetteer (only where a name may be)."""

    def __init__(self, nlp: Language, name: str, gazetteer: str, max_chars: int) -> None:
        self.name = name
        self.gaz = _GAZETTEERS.get(gazetteer) or default_gazetteer()
        self.max_chars = max_chars if max_chars > 0 else None

    def __call__(self, doc: Doc) -> Doc:
        owner = {i: ent for ent in doc.ents for i in range(ent.start, ent.end)}
        taken = set(owner)
        new: list[Span] = []
        texts = [t.text for t in doc]
        starts = [t.idx for t in doc]
        for start, end in _sentences(texts, starts, self.max_chars):
            idx = [i for i in range(start, end) if not texts[i].isspace()]
            if not any(
                texts[i][:1].isupper() and i not in taken and (k > 0 or " " in texts[i])
                for k, i in enumerate(idx)
            ):
                continue  # no capitalised word outside known entities: nothing for the CRF to find
            tags = crf_ner_tags([texts[i] for i in idx])
            for a, b, crf_label in _bio_spans([t[3] for t in tags]):
                if crf_label not in _CRF_LABELS:
                    continue
                found = self._clean(doc, idx[a], idx[b - 1] + 1, _CRF_LABELS[crf_label], taken, owner)
                if found is not None:
                    new.append(found)
                    taken.update(range(found.start, found.end))
        if new:
            doc.ents = sorted([*doc.ents, *new], key=lambda s: s.start)
        return doc

    def _clean(
        self, doc: Doc, s: int, e: int, label: str, taken: set[int], owner: dict[int, Span]
    ) -> Span | None:
        """The CRF's span after the rules that fix its usual errors, or None to drop it."""
        cue_inside = False
        while s < e and (s in taken or not _has_letters(doc[s].text) or doc[s].norm_ in _TITLES):
            cue_inside = cue_inside or doc[s].norm_ in _TITLES  # "GS Võ Tòng Xuân", "PGS-TS …"
            s += 1  # "Nga Vladimir Putin": the country is already a LOC
        while e > s and (e - 1 in taken or not _has_letters(doc[e - 1].text)):
            e -= 1  # "Q.3 -"
        if s >= e or taken.intersection(range(s, e)) or not doc[s].text[:1].isupper():
            return None
        if label != "ORG":  # names of people and places: every syllable capitalised ("GDP quý III")
            cut = next((k for k in range(s, e) if not _all_syllables_capitalised(doc[k].text)), e)
            e = cut
            if s >= e:
                return None
        if label != "ORG" and all(_is_acronym(doc[k].text) for k in range(s, e) if _has_letters(doc[k].text)):
            return None  # "TN CĐ", "ĐH": abbreviations the CRF takes for names
        before = doc[s - 1] if s > 0 else None
        cue = cue_inside or _person_cue(doc, s, owner)
        if e - s == 1 and " " not in doc[s].text.strip() and not cue:
            return None  # one syllable alone ("Bắc", "RON", "Tesla"): too ambiguous without "ông", "bà"…
        if before is not None and before.norm_ in _ORG_HEADS and before.text[:1].isupper():
            if before.i in taken:
                return None
            s, label = s - 1, "ORG"  # "Bộ" + "Công Thương"
        elif doc[s].norm_ in _ORG_HEADS or doc[s].norm_.split(" ")[0] in _ORG_HEADS:
            label = "ORG"
        elif cue or (label == "LOC" and _is_person_name(doc[s:e].text) and not _place_cue(before)):
            label = "PER"  # "Chủ tịch nước Lương Cường", "Đại sứ Hoa Kỳ Marc Knapper", "Nguyễn Văn Thắng"
        elif label == "PER" and _place_cue(before):
            label = "LOC"  # "đường Nguyễn Huệ", "sân bay Tân Sơn Nhất"
        return self._span(doc, s, e, label)

    def _span(self, doc: Doc, start: int, end: int, label: str) -> Span:
        surface = doc[start:end].text
        province = self.gaz.canonical_province(surface) if label == "LOC" else None
        span = Span(doc, start, end, label=label, kb_id=province or surface)
        span._.province = province
        span._.source = "crf"
        return span


def _bio_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    start, label = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, kind = tag.partition("-")
        if start >= 0 and (prefix != "I" or kind != label):
            out.append((start, i, label))
            start = -1
        if prefix == "B" or (prefix == "I" and start < 0):
            start, label = i, kind
    return out


@Language.factory("vi_crf_ner", default_config={"gazetteer": "default", "max_chars": 0})
def make_vi_crf_ner(nlp: Language, name: str, gazetteer: str, max_chars: int) -> CrfNer:
    """``max_chars`` > 0 limits the CRF to the start of the text (title + lead); 0: whole text."""
    return CrfNer(nlp, name, gazetteer, max_chars)


class PersonPattern:
    """People by pattern: family name + 1–3 capitalised syllables, where nothing else was found."""

    def __init__(self, nlp: Language, name: str, gazetteer: str) -> None:
        self.name = name
        self.gaz = _GAZETTEERS.get(gazetteer) or default_gazetteer()

    def __call__(self, doc: Doc) -> Doc:
        taken = {i for ent in doc.ents for i in range(ent.start, ent.end)}
        new = []
        for person in find_people(_text(doc), self.gaz):
            span = doc.char_span(person.start, person.end, label="PER", kb_id=person.canonical)
            if span is None or taken.intersection(range(span.start, span.end)):
                continue
            span._.source = "pattern"
            new.append(span)
            taken.update(range(span.start, span.end))
        if new:
            doc.ents = sorted([*doc.ents, *new], key=lambda s: s.start)
        return doc


@Language.factory("vi_person_pattern", default_config={"gazetteer": "default"})
def make_vi_person_pattern(nlp: Language, name: str, gazetteer: str) -> PersonPattern:
    return PersonPattern(nlp, name, gazetteer)


# --------------------------------------------------------------------------- assembly


def build_pipeline(
    gazetteer: Gazetteer | None = None,
    crf_ner: bool = True,
    crf_max_chars: int = 0,
    person_pattern: bool = True,
) -> Language:
    """The Vietnamese pipeline: tokenizer + normalize + langid + gazetteer [+ CRF NER] [+ people].

    ``crf_max_chars`` > 0 runs the CRF NER only on the first characters (title + lead).
    """
    gaz = gazetteer or default_gazetteer()
    key = f"gazetteer-{next(_GAZETTEER_KEYS)}"
    _GAZETTEERS[key] = gaz
    nlp = spacy.blank("vi", config={"nlp": {"tokenizer": {"use_pyvi": False}}})
    nlp.tokenizer = UndertheseaTokenizer(nlp.vocab, gaz)
    nlp.add_pipe("vi_normalize")
    nlp.add_pipe("vi_langid")
    nlp.add_pipe("vi_gazetteer", config={"gazetteer": key})
    nlp.add_pipe("vi_name_patterns", config={"gazetteer": key})
    if crf_ner:
        nlp.add_pipe("vi_crf_ner", config={"gazetteer": key, "max_chars": crf_max_chars})
    if person_pattern:
        nlp.add_pipe("vi_person_pattern", config={"gazetteer": key})
    return nlp


def doc_entities(doc: Doc) -> list[Entity]:
    """Unique entities (label + canonical + surface) in order of first mention."""
    return _unique(
        Entity(text=ent.text, label=ent.label_, canonical=ent.kb_id_ or ent.text) for ent in doc.ents
    )


def doc_province_relevance(doc: Doc, province: str, title_end: int, lead_end: int) -> float:
    """How much ``doc`` concerns ``province`` (its canonical new name), in [0, 1].

    Each entity pointing at the province is evidence weighted by where it is: before ``title_end``
    (title), before ``lead_end`` (lead) or in the body; combined as a noisy-OR. A sentence naming
    ``LIST_MIN_PROVINCES`` provinces, or two with a weather/round-up cue, is a list: weak evidence.
    """
    ents = [e for e in doc.ents if e._.province]
    if not any(e._.province == province for e in ents):
        return 0.0
    text = _text(doc)
    miss = 1.0
    for sentence in _SENTENCE_RE.finditer(text):
        here = [e for e in ents if sentence.start() <= e.start_char < sentence.end()]
        if not any(e._.province == province for e in here):
            continue
        provinces = {e._.province for e in here}
        lowered = sentence.group(0).lower()
        in_list = len(provinces) >= LIST_MIN_PROVINCES or (
            len(provinces) >= 2 and any(cue in lowered for cue in _ROUNDUP_CUES)
        )
        for ent in here:
            if ent._.province != province:
                continue
            if in_list:
                weight = WEIGHT_LIST
            elif ent.start_char < title_end:
                weight = WEIGHT_TITLE
            elif ent.start_char < lead_end:
                weight = WEIGHT_LEAD
            else:
                weight = WEIGHT_BODY
            miss *= 1.0 - weight
    return round(1.0 - miss, 4)
