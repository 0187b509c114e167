"""A job title's seniority level, from keywords: "Chief Revenue Officer" → c_level, "Sales Manager" → manager."""

import re

C_LEVEL = "c_level"
VP = "vp"
DIRECTOR = "director"
HEAD = "head"
MANAGER = "manager"
INDIVIDUAL = "individual"
UNKNOWN = "unknown"

SENIORITIES = (C_LEVEL, VP, DIRECTOR, HEAD, MANAGER, INDIVIDUAL, UNKNOWN)

# The three audiences B2B copy is usually written for: who signs, who runs the function, who does the work.
# The policy model reads the band as well as the level, so what works for VPs also informs C-level choices.
BAND_OF = {
    C_LEVEL: "executive",
    VP: "executive",
    HEAD: "director",
    DIRECTOR: "director",
    MANAGER: "practitioner",
    INDIVIDUAL: "practitioner",
}

# Checked in order, the most senior first, so "Co-founder & VP Sales" is c_level and
# "Executive Vice President" is vp rather than an individual contributor's "executive".
_LEVEL_PATTERNS = (
    (
        C_LEVEL,
        # "ceo", "cfo", "ciso", "cxo": C + one or two letters + O.
        r"\bchief\b|\bc[a-z]{1,2}o\b|\b(co )?founder\b|\bcofounder\b|(?<!vice )\bpresident\b"
        r"|\bmanaging (director|partner)\b|\bowner\b(?<!product owner)|\bgeschaftsfuhrer\b",
    ),
    (VP, r"\b[sea]?vp\b|\bvice president\b"),
    (HEAD, r"\bhead\b"),
    (DIRECTOR, r"\bdirector\b|\bgeneral manager\b"),
    (MANAGER, r"\bmanager\b|\blead\b|\bsupervisor\b|\bteam leader\b"),
    (
        INDIVIDUAL,
        r"\b(executive|engineer|developer|analyst|specialist|associate|representative|rep|sdr|bdr|ae"
        r"|consultant|coordinator|assistant|designer|accountant|officer|administrator|intern|scientist"
        r"|architect|marketer|recruiter|strategist|advisor|agent|buyer|planner|technician|writer|product owner)\b",
    ),
)
_COMPILED = tuple((level, re.compile(pattern)) for level, pattern in _LEVEL_PATTERNS)


def _normalise(title: str) -> str:
    text = title.casefold().replace("ä", "a").replace("ü", "u").replace("ö", "o")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def seniority_of(title: str) -> str:
    """One of SENIORITIES; "unknown" for an empty title or one no keyword places."""
    text = _normalise(title or "")
    if not text:
        return UNKNOWN
    for level, pattern in _COMPILED:
        if pattern.search(text):
            return level
    return UNKNOWN


def seniority_band(seniority: str) -> str:
    """ "executive", "director" or "practitioner" for a level of ``seniority_of``; "unknown" otherwise."""
    return BAND_OF.get(seniority, UNKNOWN)
