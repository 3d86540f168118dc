"""Text normalisation (chuẩn hoá văn bản): pure functions, no models, safe to call on anything.

Vietnamese text arrives in several encodings of "the same" string: decomposed vs composed Unicode,
two conventions for where the tone mark sits (``hoà`` vs ``hòa``), and in social text teencode
(``ko`` = ``không``) and stretched letters (``đẹppppp``). Classifiers, gazetteers and the search
index all see the normalised form, so one word has one spelling.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "collapse_repeated_letters",
    "expand_teencode",
    "normalize_social",
    "normalize_text",
    "normalize_tone_marks",
    "normalize_unicode",
    "normalize_whitespace",
    "remove_diacritics",
    "replace_emoji",
    "replace_urls",
]

#: Combining tone marks (dấu thanh): huyền, sắc, hỏi, ngã, nặng.
_TONE_MARKS = frozenset("\u0300\u0301\u0309\u0303\u0323")
#: Vowels that carry their own diacritic (â ă ê ô ơ ư): the tone goes on them.
_MARKED_VOWELS = frozenset("âăêôơưÂĂÊÔƠƯ")
_VOWELS = frozenset("aăâeêioôơuưyAĂÂEÊIOÔƠUƯY")
_WORD_RE = re.compile(r"\w+", re.UNICODE)
#: Syllables whose tone may sit on the "other" vowel (hoà/hòa, thuý/thúy, qủa/quả, hòan/hoàn).
_NEEDS_RETONE = re.compile(r"o[àáảãạèéẻẽẹ]|u[ỳýỷỹỵ]|[òóỏõọ][ae]\w|[ùúủũụ]y\w|q[ùúủũụ]", re.IGNORECASE)
_RETONE_WORD_RE = re.compile(r"\w*(?:" + _NEEDS_RETONE.pattern + r")\w*", re.IGNORECASE)
_DOUBLE_LETTER_RE = re.compile(r"([^\W\d_])\1")
_URL_RE = re.compile(r"(?:https?://|www\.)\S+|\b[\w.-]+\.(?:com|vn|net|org|info|gov)(?:\.vn)?(?:/\S*)?", re.I)
_SPACE_RE = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_NEWLINES_RE = re.compile(r"\s*\n\s*")
_EMOJI_RE = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f900-\U0001f9ff\u2b50\u2b55\u203c\u2049\ufe0f\u200d]+"
)

#: Common teencode / chat abbreviations → standard spelling. Only unambiguous tokens.
TEENCODE: dict[str, str] = {
    "ko": "không",
    "k": "không",
    "kh": "không",
    "hok": "không",
    "hông": "không",
    "khong": "không",
    "kg": "không",
    "dc": "được",
    "đc": "được",
    "dk": "được",
    "đk": "được",
    "j": "gì",
    "vs": "với",
    "mk": "mình",
    "mik": "mình",
    "bn": "bạn",
    "b": "bạn",
    "r": "rồi",
    "cx": "cũng",
    "ntn": "như thế nào",
    "trc": "trước",
    "sp": "sản phẩm",
    "đt": "điện thoại",
    "dt": "điện thoại",
    "nt": "nhắn tin",
    "ny": "người yêu",
    "bt": "bình thường",
    "thik": "thích",
    "iu": "yêu",
    "z": "vậy",
    "v": "vậy",
    "ms": "mới",
    "lm": "làm",
    "nhìu": "nhiều",
    "wa": "quá",
    "qá": "quá",
    "vl": "vãi lồn",
    "vcl": "vãi cả lồn",
    "dm": "địt mẹ",
    "đm": "địt mẹ",
    "dcm": "địt con mẹ",
    "đcm": "địt con mẹ",
    "cmm": "con mẹ mày",
    "clgt": "cái lồn gì thế",
}


def normalize_unicode(text: str) -> str:
    """Compose to NFC so that ``e + ◌́`` and ``é`` are the same string."""
    return unicodedata.normalize("NFC", text)


def normalize_whitespace(text: str) -> str:
    """Collapse runs of spaces (incl. NBSP and zero-width) and blank lines; keep single newlines."""
    text = _SPACE_RE.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _NEWLINES_RE.sub("\n", text).strip()


def _tone_position(letters: list[str]) -> int | None:
    """Index in a toneless syllable where the tone mark belongs (kiểu cũ: hòa, thúy, khỏe)."""
    lower = [c.lower() for c in letters]
    start = 0
    # Onset "qu" and "gi" + vowel: the u/i belongs to the consonant (quá, giá).
    if (len(lower) >= 3 and lower[0] == "q" and lower[1] == "u") or (
        len(lower) >= 3 and lower[0] == "g" and lower[1] == "i" and lower[2] in _VOWELS
    ):
        start = 2
    vowel_idx = [i for i in range(start, len(lower)) if lower[i] in _VOWELS]
    if not vowel_idx:
        # "gì", "gịt": the i is the only vowel.
        vowel_idx = [i for i in range(len(lower)) if lower[i] in _VOWELS]
        if not vowel_idx:
            return None
    # The vowel cluster must be contiguous; otherwise this is not a Vietnamese syllable.
    if vowel_idx[-1] - vowel_idx[0] + 1 != len(vowel_idx):
        return None
    marked = [i for i in vowel_idx if letters[i] in _MARKED_VOWELS]
    if marked:
        return marked[-1]  # ươ → ơ (người), ưa → ư (mưa), uyê → ê
    has_final = vowel_idx[-1] < len(lower) - 1
    if has_final or len(vowel_idx) == 3:
        return vowel_idx[-1] if has_final else vowel_idx[1]
    return vowel_idx[0]


def _retone_syllable(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    tones = [c for c in decomposed if c in _TONE_MARKS]
    if len(tones) != 1:
        return word
    base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONE_MARKS))
    if not base.isalpha() or len(base) > 7:
        return word
    position = _tone_position(list(base))
    if position is None:
        return word
    toned = base[: position + 1] + tones[0] + base[position + 1 :]
    return unicodedata.normalize("NFC", toned)


def normalize_tone_marks(text: str) -> str:
    """Put every tone mark where the dictionary convention puts it: ``hoà``→``hòa``, ``thuý``→``thúy``.

    Works syllable by syllable; words that are not Vietnamese syllables are left untouched.
    """
    text = normalize_unicode(text)
    if not _NEEDS_RETONE.search(text):
        return text
    return _RETONE_WORD_RE.sub(lambda m: _retone_syllable(m.group(0)), text)


def replace_urls(text: str, replacement: str = " ") -> str:
    """Replace links (http…, www…, bare domains) — they carry no topic or sentiment."""
    return _URL_RE.sub(replacement, text)


def replace_emoji(text: str, replacement: str = " ") -> str:
    """Replace emoji and pictographs, e.g. before entity matching or keyword extraction."""
    return _EMOJI_RE.sub(replacement, text)


def _base_letter(char: str) -> str:
    return unicodedata.normalize("NFD", char)[0].lower()


def collapse_repeated_letters(text: str) -> str:
    """``đẹppppp``→``đẹp``, ``quáaaa``→``quá``: no Vietnamese word has a letter three times in a row.

    Runs are compared on the base letter, so a toned vowel followed by plain copies keeps its tone.
    """
    if not _DOUBLE_LETTER_RE.search(text):  # no run of three without a double inside it
        return text
    out: list[str] = []
    run: list[str] = []
    for char in text + "\0":
        if run and char.isalpha() and _base_letter(char) == _base_letter(run[0]):
            run.append(char)
            continue
        if len(run) >= 3:
            toned = [c for c in run if c != _base_letter(c) and len(unicodedata.normalize("NFD", c)) > 1]
            out.append(toned[0] if toned else run[0])
        else:
            out.extend(run)
        run = [char] if char.isalpha() else []
        if not char.isalpha():
            out.append(char)
    return "".join(out[:-1])


def expand_teencode(text: str, table: dict[str, str] | None = None) -> str:
    """Replace whole-word chat abbreviations (teencode, matched case-insensitively) with standard spelling."""
    mapping = TEENCODE if table is None else table

    def _swap(match: re.Match[str]) -> str:
        word = match.group(0)
        return mapping.get(word.lower(), word)

    return _WORD_RE.sub(_swap, text)


def _strip_slow(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.replace("đ", "d").replace("Đ", "D")


_COMBINING_RE = re.compile("[\u0300-\u036f]")
#: Composed Latin letters with diacritics (incl. all Vietnamese ones) → base letter, for str.translate.
_STRIP_TABLE = {
    cp: _strip_slow(chr(cp))
    for cp in [*range(0x00C0, 0x0250), *range(0x1E00, 0x1F00)]
    if len(_strip_slow(chr(cp))) == 1 and _strip_slow(chr(cp)) != chr(cp)
}


def remove_diacritics(text: str) -> str:
    """Strip all Vietnamese diacritics (``Đồng Nai``→``Dong Nai``): the form of unaccented typing."""
    stripped = unicodedata.normalize("NFC", text).translate(_STRIP_TABLE)
    if _COMBINING_RE.search(stripped) is None:
        return stripped
    return _strip_slow(stripped)  # combining marks NFC could not compose


def normalize_text(text: str) -> str:
    """Standard form for press text: NFC, dictionary tone placement, tidy whitespace."""
    return normalize_whitespace(normalize_tone_marks(text))


def normalize_social(text: str, keep_emoji: bool = True) -> str:
    """Standard form for comments and posts: also drop links, stretched letters and teencode."""
    text = normalize_tone_marks(text)
    text = replace_urls(text)
    if not keep_emoji:
        text = replace_emoji(text)
    text = expand_teencode(collapse_repeated_letters(text))
    return normalize_whitespace(text)
