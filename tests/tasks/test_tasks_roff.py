"""The roff converter on hand-written pages."""

from __future__ import annotations

from diffemb.tasks.roff import parse, roff_to_text, split_args, strip_comment, unescape

PAGE = r""".\" A comment line.
.TH FROB 3 2024-01-01 "Test pages"
.SH NAME
frob, frobat \- turn widgets into gadgets
.SH SYNOPSIS
.nf
.B #include <frob.h>
.PP
.BI "int frob(int " fd ", const char *" path );
.fi
.SH DESCRIPTION
.BR frob ()
turns
.I widgets
into gadgets.\" trailing comment
It never fails.
.TP
.B EINVAL
The widget was not a widget.
.de XX
.B hidden
..
.TS
tab(;);
l l.
Name;Value
_
one;1
.TE
See \fBfrobat\fP(3) \[em] \(aqquoted\(aq \e done\&.
"""


def test_sections_title_and_filling() -> None:
    page = parse(PAGE)
    assert page.title == "FROB(3)"
    assert [s.heading for s in page.sections] == ["NAME", "SYNOPSIS", "DESCRIPTION"]
    text = roff_to_text(PAGE)
    assert "frob() turns widgets into gadgets. It never fails." in text
    assert "int frob(int fd, const char *path);" in text
    assert "EINVAL\nThe widget was not a widget." in text
    assert "Name  Value\none  1" in text
    assert "See frobat(3) \u2014 'quoted' \\ done." in text
    assert "hidden" not in text and "comment" not in text and "tab(" not in text


def test_escapes_and_arguments() -> None:
    assert unescape(r"\fBbold\fR \-n \s-1SMALL\s0 \[u00E9] \*(lqq\*(rq") == 'bold -n SMALL \u00e9 "q"'
    assert split_args(r'one "two words" "say ""hi""" a\ b') == ["one", "two words", 'say "hi"', r"a\ b"]
    assert strip_comment(r'keep \\" this \" drop') == r'keep \\" this '
