"""An industry's sector: "SaaS" and "Cybersecurity" are both information technology.

Leads arrive with free-text industries from CRMs ("B2B SaaS", "Medical Devices", "Freight & Logistics"). Many
of them share what a message should say to them, so the policy model reads the sector as well as the industry:
on a few hundred labels per industry, a preference seen across a sector is learned long before one per
industry is. The sectors are the eleven of the Global Industry Classification Standard (GICS); the keywords
map the industry names CRMs and enrichment providers commonly use.
"""

import re

UNKNOWN = "unknown"

# Sector → keywords, each matched as whole words in the normalised industry ("medical device" matches
# "Medical Devices" after plurals are folded). Checked in order: the first sector with a match wins, so the
# more specific industries come before the broad words that also appear in them ("health insurance" is
# financials, "health tech" is health care).
SECTOR_KEYWORDS = (
    (
        "financials",
        "fintech, finance, financial services, financial, bank, banking, insurance, insurtech, insurer, reinsurance, "
        "asset management, wealth management, investment, investment banking, private equity, venture capital, "
        "capital market, payment, lending, credit, accounting, mortgage, brokerage, crypto, blockchain",
    ),
    (
        "health care",
        "healthcare, health care, health, healthtech, medtech, biotech, biotechnology, pharma, pharmaceutical, "
        "life science, medical, medical device, hospital, clinic, diagnostic, dental, telehealth, "
        "veterinary, wellness",
    ),
    (
        "information technology",
        "saas, software, cybersecurity, security software, information security, developer tool, devops, "
        "it service, information technology, it, cloud, data, analytics, artificial intelligence, ai, "
        "machine learning, semiconductor, hardware, computer, electronics, networking, internet, web, app, "
        "martech, adtech, hr tech, edtech, proptech, legaltech, ecommerce platform",
    ),
    (
        "communication services",
        "telecommunication, telecom, media, advertising, marketing agency, publishing, entertainment, gaming, "
        "video game, broadcasting, social media, music, film",
    ),
    (
        "industrials",
        "manufacturing, industrial, logistics, freight, transport, transportation, shipping, supply chain, "
        "construction, engineering, aerospace, defense, machinery, automation, robotics, airline, aviation, "
        "trucking, rail, staffing, recruiting, consulting, professional service, business service, facility",
    ),
    (
        "consumer discretionary",
        "retail, ecommerce, e commerce, consumer, apparel, fashion, automotive, hospitality, hotel, travel, "
        "restaurant, leisure, education, luxury, sporting good, home improvement",
    ),
    ("consumer staples", "food, beverage, grocery, agriculture, household product, personal care, tobacco"),
    ("energy", "energy, oil, gas, petroleum, renewable, solar, wind, coal"),
    ("materials", "chemical, material, mining, metal, steel, paper, packaging, forestry"),
    ("real estate", "real estate, property, reit, commercial real estate"),
    ("utilities", "utility, utilities, water, electric utility, power generation"),
)


def _normalise(text: str) -> str:
    words = re.sub(r"[^a-z0-9]+", " ", (text or "").casefold().replace("&", " and ")).split()
    # Plurals fold to the singular so "Medical Devices" meets "medical device" ("services" → "service").
    return " ".join(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word
                    for word in words)  # fmt: skip


_PATTERNS = tuple(
    (sector, re.compile(r"\b(" + "|".join(re.escape(_normalise(k)) for k in keywords.split(", ")) + r")\b"))
    for sector, keywords in SECTOR_KEYWORDS
)


def sector_of(industry: str) -> str:
    """The GICS sector of a free-text industry, or "unknown"."""
    text = _normalise(industry)
    if not text:
        return UNKNOWN
    for sector, pattern in _PATTERNS:
        if pattern.search(text):
            return sector
    return UNKNOWN
