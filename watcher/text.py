"""Helpers shared by feed parsing and article extraction: HTML to text, charsets, languages.

Everything here is pure CPU on plain values, so it runs unchanged in the pipeline's process pool.
"""

from __future__ import annotations

import codecs
import html
import re
from collections import Counter

import lxml.html
from lxml import etree

# Elements whose content is never reader-visible text (and may be injected code).
_DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "math")
# Elements that end a line when rendered; without a break "<p>a</p><p>b</p>" would read "ab".
_BLOCK_TAGS = frozenset(
    (
        *("address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption"),
        *("figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main"),
        *("nav", "ol", "p", "pre", "section", "table", "td", "th", "title", "tr", "ul"),
    )
)
_CONTROL_CHARS = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200c\u200d\u2060\ufeff\ud800-\udfff]"
)
_ASCII_CONTROLS = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_TAG_LIKE = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]*>|<!--")
_ENTITY_LIKE = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,9});")
_HTML_PARSER = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)


def strip_controls(text: str) -> str:
    """`text` without control characters, zero-width marks or lone surrogates. ASCII text (most
    feed markup) takes a bytes fast path: the regex was 5% of a CPU worker's time."""
    if text.isascii():
        raw = text.encode("ascii")
        kept = raw.translate(None, _ASCII_CONTROLS)
        return text if len(kept) == len(raw) else kept.decode("ascii")
    return _CONTROL_CHARS.sub("", text)


def collapse_whitespace(text: str) -> str:
    """One space between words, no control characters: what a title or a one-line field needs."""
    return " ".join(strip_controls(text).split())


def _tidy_lines(text: str) -> str:
    """Collapse spaces inside lines and drop empty lines, keeping paragraph breaks as newlines."""
    # str.split() and the regex \s agree on what whitespace is; split/join is 5x faster
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _render(markup: str) -> str:
    """One pass of HTML → text with lxml; raises on input libxml2 refuses."""
    root = lxml.html.document_fromstring(markup, parser=_HTML_PARSER)
    for element in root.iter(*_DROP_TAGS):
        element.drop_tree()
    for element in root.iter(etree.Element):
        if element.tag in _BLOCK_TAGS:
            element.tail = "\n" + (element.tail or "")
    return root.text_content()


def _render_fallback(markup: str) -> str:
    """Regex last resort for strings lxml cannot take (lone surrogates and the like)."""
    markup = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", markup)
    return html.unescape(_TAG_LIKE.sub(" ", markup))


def html_to_text(markup: str | None, *, one_line: bool = False) -> str:
    """Plain text of an HTML fragment: tags gone, script/style content dropped, entities decoded.

    Feeds often escape HTML twice ("&amp;lt;b&amp;gt;"), so text that still looks like markup after
    one pass gets up to two more; a title must never show a tag to the reader or to the matcher.
    """
    if not markup:
        return ""
    text = strip_controls(markup).replace("\r\n", "\n").replace("\r", "\n")
    for _ in range(3):
        if "<" not in text and "&" not in text:
            break
        if not (_TAG_LIKE.search(text) or _ENTITY_LIKE.search(text)):
            break
        if not text.strip():
            return ""
        try:
            text = _render(text)
        except (etree.ParserError, ValueError, etree.XMLSyntaxError):
            text = _render_fallback(text)
    text = strip_controls(text)
    return collapse_whitespace(text) if one_line else _tidy_lines(text)


# --- charsets -----------------------------------------------------------------------------------

# Labels servers and documents use, mapped to the Python codec that decodes what they really send
# (the WHATWG Encoding Standard does the same: GB2312 pages contain GBK, "ISO-8859-1" is cp1252).
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "chinese": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "tis-620": "cp874",
    "big5": "big5hkscs",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}
_UTF8_NAMES = frozenset({"utf-8", "utf_8", "utf8", "u8"})


def normalise_charset(label: str | None) -> str | None:
    """The Python codec for a charset label, or None when the label names nothing we can decode."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def charset_from_content_type(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header value, as given (not normalised)."""
    if not content_type or not isinstance(content_type, str):
        return None
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    return match.group(1) if match else None


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_strict(data: bytes, codec: str) -> str | None:
    """Decode without replacement characters, or None; cp1252's five holes fall back to Latin-1."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        if codec == "cp1252":
            return data.decode("latin-1")
        return None


# Legacy encodings a page without a usable declaration is realistically in. Letting the detector
# pick among every code page turns French or Portuguese into cp1250/cp1257 mojibake; Western text
# that is not UTF-8 is cp1252 far more often than any other single-byte encoding.
_GUESS_CANDIDATES = [
    "cp1252",
    "gb18030",
    "cp949",
    "cp932",
    "euc_jp",
    "big5hkscs",
    "cp1251",
    "koi8_r",
]


def guess_encoding(data: bytes) -> str | None:
    """charset_normalizer's guess for bytes that are not UTF-8 and declare nothing usable."""
    from charset_normalizer import from_bytes

    sample = data if len(data) <= 20000 else data[:10000] + data[-10000:]
    best = from_bytes(sample, cp_isolation=_GUESS_CANDIDATES).best()
    return _japanese_if_kana(sample, normalise_charset(best.encoding) if best else None)


_FULL_WIDTH_KANA = re.compile(r"[\u3041-\u30fa]")


def _japanese_if_kana(sample: bytes, guessed: str | None) -> str | None:
    """charset_normalizer has no language model for CJK, so short Shift_JIS or EUC-JP text that
    also decodes as Korean cp949 may be guessed cp949 (mojibake). Japanese prose is a third kana;
    Korean bytes read as Shift_JIS or EUC-JP give next to none."""
    if guessed != "cp949":
        return guessed
    for codec in ("cp932", "euc_jp"):
        text = sample.decode(codec, errors="replace")
        wide = sum(1 for ch in text if ord(ch) > 0x2FFF)
        if wide and len(_FULL_WIDTH_KANA.findall(text)) >= max(3, wide // 10):
            return codec
    return guessed


# --- languages ----------------------------------------------------------------------------------

_LANG_FIXES = {
    "jp": "ja",
    "jpn": "ja",
    "kr": "ko",
    "kor": "ko",
    "cn": "zh",
    "zho": "zh",
    "chi": "zh",
    "eng": "en",
    "fra": "fr",
    "fre": "fr",
    "deu": "de",
    "ger": "de",
    "spa": "es",
    "por": "pt",
    "ita": "it",
    "rus": "ru",
    "ara": "ar",
}


def normalise_lang(value: str | None) -> str | None:
    """ISO 639-1 lower-case code from a language tag ("ko-KR" → "ko", "IT-it" → "it"), else None."""
    if not value:
        return None
    head = re.split(r"[-_\s,;]", value.strip(), maxsplit=1)[0].lower()
    head = _LANG_FIXES.get(head, head)
    return head if len(head) == 2 and head.isascii() and head.isalpha() else None


_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_KANA = re.compile(r"[\u3040-\u309f\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")
_WORDS = re.compile(r"[^\W\d_]+")
_SINGLE_LANGUAGE_SCRIPTS = (
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
)
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f]")
# Letters only one language of a shared script uses often (ы/э Russian, і/ї/є Ukrainian; ے ٹ ڈ ڑ ں
# Urdu, پ چ ژ گ Persian and Urdu, neither in Arabic).
_SCRIPT_MARKERS = (
    (_CYRILLIC, (("ru", "ыэЫЭ"), ("uk", "іїєґІЇЄҐ"))),
    (_ARABIC, (("ur", "ےٹڈڑں"), ("fa", "پچژگ"), ("ar", ""))),
)
_DECLARED_SCRIPT = {
    "ko": _HANGUL,
    "ja": re.compile(f"{_KANA.pattern}|{_HAN.pattern}"),
    "zh": _HAN,
    "ru": _CYRILLIC,
    "uk": _CYRILLIC,
    "ar": _ARABIC,
    "ur": _ARABIC,
    "fa": _ARABIC,
    **{code: pattern for code, pattern in _SINGLE_LANGUAGE_SCRIPTS},
}
# The commonest function words of Latin-script languages: cheap and, over a paragraph, decisive.
_STOPWORDS = {
    "en": "the of and to a in is that for it was on with as he be at by this had not are but from",
    "fr": "de la le et les des en un une du est que qui dans pour pas au sur il ne ce par plus",
    "es": "de la que el en y a los las del se un por con una para es al lo como más pero su sus",
    "pt": "de a o que e do da em um para com não uma os no se na por mais as dos das ao foi",
    "it": "di e il la che a per un in non è del della le una si con sono da gli nel anche più al",
    "nl": "de het een en van in is dat op te niet voor met zijn er ook aan om bij die wordt naar",
    "de": "der die und in den das von zu mit sich des auf für ist im dem nicht ein eine als auch",
    "pl": "i w na z się nie do że to jest o jak po przez od za tym są oraz dla a",
    "cs": "a v se na je že s z do o to by jako pro ale jsou již podle které i",
}
_STOPWORD_SETS = {lang: frozenset(words.split()) for lang, words in _STOPWORDS.items()}


def _languages_by_stopword() -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for lang, stop in _STOPWORD_SETS.items():
        for word in stop:
            found[word] = (*found.get(word, ()), lang)
    return found


_STOPWORD_LANGS = _languages_by_stopword()


def detect_language(text: str, *, sample: int = 4000) -> str | None:
    """Cheap language identification, script first: Hangul → ko, Kana → ja, Han only → zh; Thai,
    Greek, Hebrew by script; Cyrillic and Arabic script by marker letters; Latin script by counting
    function words. None when the evidence is thin (a title of four words, a mixed-script list).

    A script must dominate the text, so an English story quoting "독도" is not Korean.
    """
    head = text[:sample] if text else ""
    if head.isascii():  # no script to weigh: only the Latin function words can tell
        return _latin_language(head) if sum(map(str.isalpha, head)) >= 2 else None
    letters = len(_LETTER.findall(head))
    if letters < 2:
        return None
    hangul, kana, han = (len(p.findall(head)) for p in (_HANGUL, _KANA, _HAN))
    cjk = hangul + kana + han
    if cjk >= 0.3 * letters:
        if hangul > kana and hangul >= 0.3 * cjk:
            return "ko"
        return "ja" if kana >= 0.05 * cjk else "zh"
    for code, pattern in _SINGLE_LANGUAGE_SCRIPTS:
        if len(pattern.findall(head)) >= 0.3 * letters:
            return code
    for pattern, markers in _SCRIPT_MARKERS:
        if len(pattern.findall(head)) >= 0.3 * letters:
            return next(
                (code for code, chars in markers if not chars or _has_any(head, chars)), None
            )
    return _latin_language(head)


def _has_any(text: str, chars: str) -> bool:
    return any(ch in text for ch in chars)


def _latin_language(text: str) -> str | None:
    """The language whose function words occur most, if clearly ahead of the runner-up."""
    words = [w.lower() for w in _WORDS.findall(text)]
    if len(words) < 8:
        return None
    totals = dict.fromkeys(_STOPWORD_SETS, 0)
    for word, count in Counter(words).items():  # one lookup per distinct word, not per language
        for lang in _STOPWORD_LANGS.get(word, ()):
            totals[lang] += count
    scores = sorted(((total, lang) for lang, total in totals.items()), reverse=True)
    (best, lang), (second, _) = scores[0], scores[1]
    enough = max(3, len(words) // 20)
    return lang if best >= enough and best >= 1.4 * second else None


def reconcile_lang(declared: str | None, detected: str | None, text: str = "") -> str | None:
    """Which language to believe when a feed or page declares one and the text suggests another.

    Script evidence wins (Hangul text is Korean whatever the CMS template says), except Han-only
    text under a declared ja/ko: headlines are often all kanji/hanja. Function-word evidence wins
    between languages it can tell apart (Libération's French pages declare lang="en"), and over a
    declared non-Latin language only when `text` has no letter of that script at all (an English
    quote in a Korean column is still a Korean article); never over a language it does not model
    (Slovak looks like Czech to it).
    """
    if detected is None or declared == detected:
        return declared
    if declared is None:
        return detected
    if detected in _STOPWORDS:
        if declared in _STOPWORDS:
            return detected
        script = _DECLARED_SCRIPT.get(declared)
        return detected if script is not None and not script.search(text) else declared
    if detected == "zh" and declared in ("ja", "ko"):
        return declared
    return detected
