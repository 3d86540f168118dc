"""Language identification (nhận dạng ngôn ngữ) that also recognises Vietnamese typed without diacritics.

General-purpose identifiers (py3langid, fastText) see "Ubnd tinh Dong Nai hop ban ve giai phong mat
bang" as Indonesian or Tagalog. Vietnamese has a closed syllable inventory: every word is one
syllable made of an onset, a vowel nucleus and an optional final from short fixed lists. So we check

1. the share of letters that carry Vietnamese-only diacritics (ă â đ ê ô ơ ư and tone marks), and
2. the share of tokens that are well-formed Vietnamese syllables once diacritics are stripped,
   together with the share of very frequent Vietnamese function syllables (khong, duoc, cua, nhung…).

English has its own frequent function words, which we use to name the commonest other language.
"""

from __future__ import annotations

import re

from nlp.normalize import TEENCODE, remove_diacritics

__all__ = ["detect_language", "is_vietnamese_syllable"]

_ONSETS = "ngh|ng|gh|gi|kh|nh|ph|qu|th|tr|ch|b|c|d|g|h|k|l|m|n|p|r|s|t|v|x"
_NUCLEI = (
    "uyeu|ieu|yeu|uoi|uou|oai|oay|oeo|uay|uya|uye|uyu|uoc|"
    "ai|ao|au|ay|eo|eu|ia|ie|iu|oa|oe|oi|oo|ua|ue|ui|uo|uu|uy|ya|ye|"
    "a|e|i|o|u|y"
)
_FINALS = "ch|ng|nh|c|m|n|p|t"
_SYLLABLE_RE = re.compile(rf"^(?:{_ONSETS})?(?:{_NUCLEI})(?:{_FINALS})?$")
#: Enough text to decide; longer inputs are cut (langid runs on every document).
MAX_CHARS = 800
_TOKEN_RE = re.compile(r"[^\W\d_]+", re.UNICODE)
_VI_LETTERS = frozenset("ăâđêôơưĂÂĐÊÔƠƯ")
_TONE_MARKS = frozenset("\u0300\u0301\u0309\u0303\u0323")

#: Very frequent Vietnamese syllables, without diacritics.
_VI_FUNCTION = frozenset(
    [
        "va",
        "la",
        "cua",
        "co",
        "khong",
        "duoc",
        "cho",
        "nhung",
        "cac",
        "mot",
        "nguoi",
        "trong",
        "da",
        "voi",
        "nay",
        "khi",
        "den",
        "ve",
        "de",
        "tai",
        "tu",
        "thi",
        "nhu",
        "cung",
        "se",
        "dang",
        "rat",
        "nhieu",
        "nam",
        "ngay",
        "cung",
        "toi",
        "ban",
        "minh",
        "anh",
        "chi",
        "em",
        "ho",
        "chung",
        "con",
        "nha",
        "nuoc",
        "tinh",
        "huyen",
        "xa",
        "thanh",
        "pho",
        "viec",
        "theo",
        "sau",
        "truoc",
        "ra",
        "vao",
        "len",
        "xuong",
        "lam",
        "di",
        "neu",
        "vi",
        "nen",
        "nhat",
        "hon",
        "moi",
        "ma",
        "them",
        "nao",
        "gi",
        "vay",
        "roi",
        "chua",
        "biet",
        "thay",
        "noi",
        "phai",
        "muon",
        "can",
        "dan",
        "ong",
        "ba",
        "cai",
        "chiec",
    ]
)
_EN_FUNCTION = frozenset(
    [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "was",
        "for",
        "on",
        "that",
        "with",
        "as",
        "by",
        "at",
        "from",
        "are",
        "be",
        "this",
        "it",
        "an",
        "or",
        "have",
        "has",
        "not",
        "but",
        "which",
        "were",
        "their",
        "they",
        "will",
        "would",
        "been",
        "its",
        "more",
        "can",
        "about",
        "after",
        "into",
        "than",
        "who",
        "said",
        "also",
        "there",
    ]
)


#: Foreign words and interjections common in Vietnamese comments (they are not syllables).
_LOANWORDS = frozenset(
    {
        "ok",
        "oke",
        "okela",
        "link",
        "video",
        "clip",
        "facebook",
        "fb",
        "like",
        "share",
        "comment",
        "cmt",
        "bro",
        "covid",
        "haha",
        "hihi",
        "huhu",
        "hehe",
        "kkk",
        "sale",
        "shop",
        "ship",
        "online",
        "livestream",
        "idol",
        "fan",
        "team",
        "test",
        "app",
        "game",
        "wifi",
        "youtube",
        "tiktok",
        "zalo",
        "shopee",
        "lol",
    }
)


def is_vietnamese_syllable(token: str) -> bool:
    """True if ``token`` (with or without diacritics) is a well-formed Vietnamese syllable."""
    return bool(_SYLLABLE_RE.match(remove_diacritics(token).lower()))


def detect_language(text: str) -> tuple[str, float]:
    """Best-guess language code (``vi``, ``en`` or ``und``) and a confidence in [0, 1].

    Blank or letter-free text gives ``("und", 0.0)``; it never raises.
    """
    sample = text[:MAX_CHARS]
    tokens = _TOKEN_RE.findall(sample)
    if not tokens:
        return "und", 0.0
    n = len(tokens)
    length_factor = min(1.0, 0.5 + n / 20)  # three words are weaker evidence than thirty
    lowered = _TOKEN_RE.findall(remove_diacritics(sample).lower())
    if len(lowered) != n:  # a letter outside Vietnamese/Latin split differently: fall back per token
        lowered = [remove_diacritics(t).lower() for t in tokens]
    marked = sum(1 for raw, plain in zip(tokens, lowered, strict=True) if raw.lower() != plain) / n
    valid = sum(1 for t in lowered if _SYLLABLE_RE.match(t) or t in TEENCODE or t in _LOANWORDS) / n
    vi_func = sum(1 for t in lowered if t in _VI_FUNCTION) / n
    en_func = sum(1 for t in lowered if t in _EN_FUNCTION) / n

    if marked >= 0.2 and valid >= 0.6:
        return "vi", round(min(1.0, 0.6 + marked * 0.4 + valid * 0.2) * length_factor, 3)
    # Unaccented: almost every token must be a syllable, with Vietnamese function words about.
    vi_score = valid**2 * (0.7 + min(0.3, vi_func * 2 + marked))
    en_score = min(1.0, en_func * 4) * (1.0 - marked)
    if vi_score >= 0.5 and vi_score > en_score and valid >= 0.75:
        return "vi", round(min(1.0, vi_score) * length_factor, 3)
    if en_score >= 0.5:
        return "en", round(en_score * length_factor, 3)
    return "und", round(max(0.0, 1.0 - max(vi_score, en_score)) * 0.5 * length_factor, 3)
