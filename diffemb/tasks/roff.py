"""A small roff (man(7) macro) to plain-text converter, pure Python.

Enough of roff for the Linux man-pages project's sources: font and paragraph macros,
``tbl`` tables, named special characters, and the escapes those pages use. It aims at
text an embedder can read, not at nroff's layout: source lines stay lines (no filling or
justification), paragraph macros become blank lines, and anything it does not know is
dropped rather than guessed. Being pure Python, it is fast and gives the same output on
every machine, which ``man``/``groff`` (locale, terminal width, version) would not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Named glyphs used by the man-pages sources; unknown names render as nothing.
GLYPHS: dict[str, str] = {
    "aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'", "ga": "`",
    "ha": "^", "ti": "~", "bu": "\u2022", "em": "\u2014", "en": "\u2013", "hy": "-",
    "mi": "-", "pl": "+", "eq": "=", "mu": "\u00d7", "di": "\u00f7", "+-": "\u00b1",
    "co": "\u00a9", "rg": "\u00ae", "tm": "\u2122", "de": "\u00b0", "dg": "\u2020",
    "sc": "\u00a7", "ps": "\u00b6", "fm": "\u2032", "sd": "\u2033", "ra": "\u2192",
    "la": "\u2190", "->": "\u2192", "<-": "\u2190", "<=": "\u2264", ">=": "\u2265",
    "!=": "\u2260", "ua": "\u2191", "da": "\u2193", "rs": "\\", "sl": "/", "ba": "|",
    "br": "|", "lh": "\u261c", "rh": "\u261e", "Eu": "\u20ac", "mc": "\u00b5",
    "ss": "\u00df", "^o": "\u00f4", "'a": "\u00e1", "`a": "\u00e0", "^a": "\u00e2",
    ":a": "\u00e4", "'e": "\u00e9", "`e": "\u00e8", ":o": "\u00f6", ":u": "\u00fc",
    "~n": "\u00f1", ",c": "\u00e7", "lB": "[", "rB": "]", "lC": "{", "rC": "}",
    "Fn": "\u0192", "OK": "\u2713", "at": "@", "sh": "#", "Do": "$", "ct": "\u00a2",
}  # fmt: skip

# Predefined strings (\*x); man-pages only uses these few.
STRINGS: dict[str, str] = {"lq": '"', "rq": '"', "R": "\u00ae", "Tm": "(TM)"}

_ESCAPE = re.compile(
    r"""\\(?:
        \[(?P<bracket>[^\]]*)\]                                  # \[name]
      | \((?P<paren>..)                                          # \(xx
      | (?P<arg>[*fnsFgkmMY$])(?:\[(?P<argb>[^\]]*)\]|\((?P<argp>..)|(?P<argn>[+-]?\d)|(?P<argc>.))
      | (?P<delim>[hvwoNXDlLbxZRSAB])'(?P<dbody>[^']*)'           # \w'...' and kin
      | (?P<char>.)
    )""",
    re.VERBOSE | re.DOTALL,
)


def _glyph(name: str) -> str:
    if name in GLYPHS:
        return GLYPHS[name]
    unicode_name = re.fullmatch(r"u([0-9A-Fa-f]{4,6})(?:_.*)?", name)
    if unicode_name:
        return chr(int(unicode_name.group(1), 16))
    return ""


def _render_escape(m: re.Match[str]) -> str:
    if m.group("bracket") is not None:
        return _glyph(m.group("bracket"))
    if m.group("paren") is not None:
        return _glyph(m.group("paren"))
    if m.group("arg") is not None:
        if m.group("arg") == "*":
            name = m.group("argb") or m.group("argp") or m.group("argc") or ""
            return STRINGS.get(name, "")
        return ""  # fonts, sizes, registers, colours: presentation only
    if m.group("delim") is not None:
        return ""  # motions, widths, overstrikes, lines: nothing to read
    char = m.group("char")
    if char in ("e", "\\"):
        return "\\"
    if char in ("-", "'", "`", ".", '"'):
        return {"'": "'", "`": "`"}.get(char, char)
    if char in (" ", "~", "0", "t"):
        return " "
    # \& \| \^ \% \: \, \/ \c \z \{ \} \d \u \r \p \k ... are zero-width or layout-only.
    return ""


def strip_comment(line: str) -> str:
    """``line`` up to a ``\\"`` comment, skipping escaped backslashes correctly."""
    if '\\"' not in line:
        return line  # the common case, without the regex scan
    for m in _ESCAPE.finditer(line):
        if m.group(0) == '\\"':
            return line[: m.start()]
    return line


def unescape(text: str) -> str:
    """Roff escapes replaced by the characters they stand for (or nothing)."""
    if "\\" not in text:
        return text
    return _ESCAPE.sub(_render_escape, text)


def split_args(text: str) -> list[str]:
    """Macro arguments: blank-separated, ``"..."`` groups, ``""`` a literal quote."""
    if '"' not in text and "\\" not in text:
        return text.split()  # most arguments need no quote or escape handling
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        buf: list[str] = []
        if text[i] == '"':
            i += 1
            while i < n:
                if text[i] == '"':
                    if text[i + 1 : i + 2] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(text[i : i + 2] if text[i] == "\\" else text[i])
                i += 2 if text[i] == "\\" else 1
        else:
            while i < n and text[i] not in " \t":
                buf.append(text[i : i + 2] if text[i] == "\\" else text[i])
                i += 2 if text[i] == "\\" else 1
        args.append("".join(buf))
    return args


_JOINED_FONTS = {"BR", "RB", "IR", "RI", "BI", "IB"}
_SPACED_FONTS = {"B", "I", "SM", "SB", "q", "SY", "OP"}
_PARAGRAPHS = {"PP", "P", "LP", "sp", "HP", "IP", "TP", "TQ", "bp"}
_LINE_BREAKS = {"br", "RS", "RE", "in", "ti", "ce", "YS"}
_MACRO_DEFS = {"de", "de1", "am", "am1", "ig"}


@dataclass
class Section:
    heading: str
    lines: list[str] = field(default_factory=list)


@dataclass
class ManPage:
    title: str  # "read(2)" from .TH; empty when the page has none
    sections: list[Section]


class _Writer:
    """Output lines with roff's filling: text lines of a paragraph join with spaces."""

    def __init__(self) -> None:
        self.sections = [Section("")]
        self.joinable = False
        self.nofill = False
        self.tag_pending = False  # the next output line is a .TP tag and stands alone

    def text(self, text: str, fill: bool = True) -> None:
        fill = fill and not self.nofill
        lines = self.sections[-1].lines
        if fill and self.joinable and lines and lines[-1]:
            lines[-1] += " " + text
        else:
            lines.append(text)
        self.joinable = fill and not self.tag_pending
        self.tag_pending = False

    def line_break(self) -> None:
        self.joinable = False

    def paragraph(self) -> None:
        lines = self.sections[-1].lines
        if lines and lines[-1]:
            lines.append("")
        self.joinable = False

    def section(self, heading: str) -> None:
        self.sections.append(Section(heading))
        self.joinable = False


def parse(source: str) -> ManPage:
    """Render a man(7) page to plain text, kept in sections by ``.SH`` heading."""
    title = ""
    out = _Writer()
    skipping_def = False
    table: dict[str, str] | None = None  # {"tab": char, "spec": "1" while in format lines}

    for raw in source.splitlines():
        if skipping_def:
            skipping_def = raw.strip() != ".."
            continue
        line = strip_comment(raw)
        if line[:1] in (".", "'"):
            parts = line[1:].lstrip(" \t").split(None, 1)
            name = parts[0] if parts else ""
            rest = parts[1] if len(parts) > 1 else ""
            if name in _MACRO_DEFS:
                skipping_def = True
            elif name == "TS":
                table = {"tab": "\t", "spec": "1"}
                out.paragraph()
            elif name == "T&" and table is not None:
                table["spec"] = "1"
            elif name == "TE":
                table = None
                out.paragraph()
            elif name == "TH":
                args = split_args(rest)
                if len(args) >= 2:
                    title = f"{unescape(args[0])}({unescape(args[1])})"
            elif name == "SH":
                out.section(" ".join(unescape(a) for a in split_args(rest)).strip())
            elif name == "SS":
                out.paragraph()
                out.text(" ".join(unescape(a) for a in split_args(rest)).strip(), fill=False)
            elif name in ("nf", "EX"):
                out.line_break()
                out.nofill = True
            elif name in ("fi", "EE"):
                out.line_break()
                out.nofill = False
            elif name in _JOINED_FONTS:
                out.text(unescape("".join(split_args(rest))))
            elif name in _SPACED_FONTS:
                out.text(unescape(" ".join(split_args(rest))))
            elif name in _PARAGRAPHS:
                out.paragraph()
                if name == "IP" and rest:
                    out.text(unescape(split_args(rest)[0]), fill=False)
                out.tag_pending = name in ("TP", "TQ")
            elif name in _LINE_BREAKS:
                out.line_break()
            continue  # every other request or macro only shapes layout
        if table is not None:
            if table["spec"]:
                # tbl options and format lines; the last format line ends with ".".
                tab = re.search(r"tab\s*\((.)\)", line)
                if tab:
                    table["tab"] = tab.group(1)
                if line.rstrip().endswith("."):
                    table["spec"] = ""
                continue
            if line.strip() in ("_", "=", "T}"):
                continue
            cells = line.replace("T{", "").replace("T}", "").replace(table["tab"], "  ")
            out.text(unescape(cells), fill=False)
            continue
        if not line.strip():
            out.paragraph()  # a blank input line is a paragraph break in roff
            continue
        if line[:1] in (" ", "\t"):
            out.line_break()  # so is leading space
        out.text(unescape(line))
    sections = [s for s in out.sections if s.heading or s.lines]
    return ManPage(title=title, sections=sections)


def render_lines(lines: list[str]) -> str:
    """Lines joined, trailing blanks trimmed, runs of blank lines collapsed to one."""
    text = "\n".join(line.rstrip() for line in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def roff_to_text(source: str) -> str:
    """A whole page as plain text: title, then each section heading and body."""
    page = parse(source)
    parts = [page.title] if page.title else []
    for section in page.sections:
        body = render_lines(section.lines)
        parts.append(f"{section.heading}\n{body}".strip())
    return "\n\n".join(p for p in parts if p)
